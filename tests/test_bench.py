"""`mscl bench`: figures, JSON, projection arithmetic."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from mscl.bench.measure import epoch_batches
from mscl.bench.projection import paper_counts, project_replay_run, replay_patches
from mscl.cli.main import app
from mscl.config import load_config

TINY = ["--preset", "tiny", "--set", "model.channels=[2,4,8]", "--set", "train.patch_size=[8,8,8]"]


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def test_bench_writes_every_figure_to_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "bench.json"
    monkeypatch.setenv("COLUMNS", "200")  # rich's table width: one row a line
    result = CliRunner().invoke(
        app, ["bench", "--preset", "tiny", "--device", "cpu", "--steps", "2", "--json", str(out), "--quiet"]
    )
    assert result.exit_code == 0, result.output
    assert "end to end / model only" in result.stdout
    assert "paper replay run at tiny rates: total" in result.stdout  # the paper's counts, tiny's speed
    report = json.loads(out.read_text())
    assert report["environment"]["device"] == "cpu"
    assert report["environment"]["torch"] == torch.__version__
    assert report["settings"]["preset"] == "tiny"
    assert report["settings"]["patches_per_step"] == 4  # tiny: 2 cases x 2 patches
    training = report["training"]
    assert training["model_only_patches_per_s"] > 0 and training["end_to_end_patches_per_s"] > 0
    assert report["ratio"] == pytest.approx(
        training["end_to_end_patches_per_s"] / training["model_only_patches_per_s"]
    )
    assert training["cache_build_s"] >= 0 and training["cases"] == 8
    assert report["inference_volumes_per_s"] > 0
    assert {"numpy_copy", "ram", "hdf5", "zarr"} <= set(report["memory_mb_per_s"])
    assert report["projection"]["patches"] == 484_800
    assert report["projection"]["train_s"] == pytest.approx(484_800 / training["end_to_end_patches_per_s"])
    assert report["target"] == {
        "ratio": 0.8,
        "stated_for": "cpu with the quick preset",
        "applies": False,
        "passed": report["ratio"] >= 0.8,
    }


def test_bench_on_a_prepared_dataset_trains_its_first_stage(blob_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(
        app,
        ["bench", "--data", str(blob_dataset), *TINY, "--device", "cpu", "--steps", "1", "--json", str(out)],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["settings"]["data"].endswith("(stage 1: Big)")
    assert report["training"]["cases"] == 3  # Big: 4 subjects, floor(4 * 0.34) = 1 of them for testing


def test_bench_times_each_strategy_step_against_model_only(blob_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    args = ["bench", "--data", str(blob_dataset), *TINY, "--device", "cpu", "--steps", "1"]
    args += ["--json", str(out)]
    result = CliRunner().invoke(app, [*args, "--strategies", "finetune,ewc,lwf,replay"])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    model_only = report["training"]["model_only_patches_per_s"]
    assert list(report["strategies"]) == ["finetune", "ewc", "lwf", "replay"]
    for figures in report["strategies"].values():
        assert figures["end_to_end_patches_per_s"] > 0
        assert figures["vs_model_only"] == pytest.approx(figures["end_to_end_patches_per_s"] / model_only)
    assert "strategy lwf" in result.stdout
    unknown = CliRunner().invoke(app, ["bench", "--preset", "tiny", "--strategies", "ewc,magic"])
    assert unknown.exit_code == 2 and "unknown strategy 'magic'; known: " in unknown.stderr


def test_bench_refuses_bad_steps() -> None:
    result = CliRunner().invoke(app, ["bench", "--preset", "tiny", "--steps", "0"])
    assert result.exit_code == 2
    assert "--steps must be >= 1" in result.stderr


def test_model_only_steps_mirror_an_epoch() -> None:
    assert epoch_batches(7, 4, 4) == [16, 12]
    assert epoch_batches(8, 4, 4) == [16, 16]
    assert epoch_batches(1, 4, 2) == [2]


def test_replay_patches_by_hand() -> None:
    # stages: 64 | 82 + 20 memory | 38 + 40 memory; 2 epochs x 4 patches per case
    assert replay_patches([64, 82, 38], quota=20, epochs=2, patches_per_case=4) == 2 * 4 * (64 + 102 + 78)
    assert replay_patches([5, 7], quota=20, epochs=1, patches_per_case=1) == 5 + 12


def test_paper_projection_by_hand() -> None:
    counts = paper_counts(load_config("paper"))
    train = {c.name: c.train_cases for c in counts}
    assert train == {
        "BWH": 64,
        "Karo": 82,
        "Rennes": 41,
        "Milan": 38,
        "NIH": 23,
        "Montp": 11,
        "UCSF": 10,
        "AMU": 7,
    }
    assert [c.name for c in counts][:2] == ["BWH", "Karo"]
    # memory before each stage: 0, 20, 40, 60, 80, 100, 100 + 11, 111 + 10
    memory = 0 + 20 + 40 + 60 + 80 + 100 + 111 + 121
    patches = 150 * 4 * (sum(train.values()) + memory)
    projection = project_replay_run(patches_per_s=100.0, volumes_per_s=2.0)
    assert projection.patches == patches == 484_800
    assert projection.test_cases == 16 + 20 + 10 + 9 + 5 + 2 + 2 + 1
    assert projection.evaluations == 9
    assert projection.train_s == pytest.approx(4848.0)
    assert projection.eval_s == pytest.approx(9 * 65 / 2.0)
    assert projection.total_s == pytest.approx(4848.0 + 292.5)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_training_step_never_synchronises_the_gpu() -> None:
    from mscl.bench.runner import synthetic_cases
    from mscl.engine.cache import CaseCache
    from mscl.engine.sampling import sample_patches
    from mscl.engine.trainer import make_optimizer, optimizer_step
    from mscl.models.unet import build_model

    cfg = load_config("tiny")
    train = cfg.train
    cases = synthetic_cases(cfg, 4)
    cache = CaseCache.from_arrays(
        [i for i, _ in cases], [la for _, la in cases], "cuda", min_shape=train.patch_size
    )
    model = build_model(cfg.model, seed=0).cuda()
    optimizer = make_optimizer(model, train)
    generator = torch.Generator(device="cuda").manual_seed(0)
    order = torch.randperm(len(cache), generator=generator, device="cuda")

    def step() -> None:
        case_idx = order[:2, None].expand(-1, train.patches_per_case).reshape(-1)
        images, labels = sample_patches(cache, case_idx, train.patch_size, 0.5, generator)
        optimizer_step(model, optimizer, images, labels, train)

    step()  # warm-up: cuDNN autotuning may synchronise
    torch.cuda.set_sync_debug_mode("error")
    try:
        step()
    finally:
        torch.cuda.set_sync_debug_mode(0)
