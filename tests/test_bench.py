"""`mscl bench` (figures, JSON, projection arithmetic) and `mscl train --parallel` (mscl.parallel)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from mscl import parallel
from mscl.bench.measure import epoch_batches
from mscl.bench.projection import paper_counts, project_replay_run, replay_patches
from mscl.cli.main import app
from mscl.config import load_config
from mscl.errors import DataError
from mscl.tracking.rmatrix import load_r_matrix

TINY = ["--preset", "tiny", "--set", "model.channels=[2,4,8]", "--set", "train.patch_size=[8,8,8]"]


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def test_bench_writes_every_figure_to_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(
        app, ["bench", "--preset", "tiny", "--device", "cpu", "--steps", "2", "--json", str(out), "--quiet"]
    )
    assert result.exit_code == 0, result.output
    assert "end to end / model only" in result.stdout
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


def test_seeds_are_dealt_round_robin_and_resources_split() -> None:
    assert parallel.split_seeds([0, 1, 2, 3, 4], 2) == [[0, 2, 4], [1, 3]]
    assert parallel.split_seeds([7], 4) == [[7]]
    assert parallel.worker_threads(2, cores=16) == 8
    assert parallel.worker_threads(4, cores=2) == 1
    assert parallel.worker_gpu(3, "auto", gpus=2) == "1"
    assert parallel.worker_gpu(0, "cuda:1", gpus=2) is None
    assert parallel.worker_gpu(1, "cuda", gpus=1) is None


def test_a_failing_seed_stops_its_worker_and_is_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import mscl.api

    def fake_train_study(data_dir: Path, cfg, quiet: bool = False) -> list:
        if cfg.protocol.seeds == [4]:
            raise DataError("dataset.json: broken")
        return []

    monkeypatch.setattr(mscl.api, "train_study", fake_train_study)
    outcome = parallel._run_seeds(tmp_path, load_config("tiny"), [2, 4, 6])
    assert outcome.failure == parallel.SeedFailure(4, "dataset.json: broken", 2)
    assert outcome.skipped == [6]
    error = parallel.SeedsFailed([outcome.failure], outcome.skipped)
    assert (
        str(error) == "seed 4 failed: dataset.json: broken; seeds not run after a failure in their worker: 6"
    )
    assert error.exit_code == 2
    crash = parallel.SeedFailure(1, "RuntimeError: boom", 1)
    assert parallel.SeedsFailed([outcome.failure, crash], []).exit_code == 1


def _r_matrices(uri: str, experiment: str) -> dict[int, dict[str, list[list[float | None]]]]:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    runs = [r for r in client.search_runs([exp.experiment_id]) if "mscl.seed" in r.data.tags]
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert all(r.info.status == "FINISHED" for r in parents)
    matrices = {int(r.data.tags["mscl.seed"]): load_r_matrix(client, r.info.run_id) for r in parents}
    return {seed: {name: m.matrix for name, m in rm.metrics.items()} for seed, rm in matrices.items()}


@pytest.mark.slow
def test_parallel_seeds_match_a_sequential_run(blob_dataset: Path, tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    common = [
        "train",
        "--data",
        str(blob_dataset),
        "--seeds",
        "2",
        *TINY,
        "--epochs",
        "1",
        "--tracking-uri",
        uri,
    ]
    runner = CliRunner()
    sequential = runner.invoke(app, [*common, "--experiment", "sequential", "--quiet"])
    assert sequential.exit_code == 0, sequential.output
    both = runner.invoke(app, [*common, "--experiment", "parallel", "--parallel", "2", "--quiet"])
    assert both.exit_code == 0, both.output
    expected = _r_matrices(uri, "sequential")
    assert sorted(expected) == [0, 1]
    assert _r_matrices(uri, "parallel") == expected


@pytest.mark.slow
def test_parallel_user_errors_name_each_seed(blob_dataset: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["train", "--data", str(blob_dataset), "--seeds", "2", *TINY, "--order", "Big,Nowhere",
         "--parallel", "2", "--tracking-uri", f"sqlite:///{tmp_path}/m.db", "--quiet"],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "seed 0 failed: protocol.order names unknown center(s) Nowhere" in result.stderr
    assert "seed 1 failed" in result.stderr


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
