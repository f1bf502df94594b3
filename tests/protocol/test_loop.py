"""The stage loop: R matrix shape, what each strategy's stages see, carry-over, determinism."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mscl.config import DEFAULT_METRICS, ExperimentConfig, load_config
from mscl.data.dataset import PreparedDataset
from mscl.protocol.loop import plan_study, run_study, stage_model
from mscl.protocol.observers import StudyObserver
from mscl.protocol.results import StageOutcome
from mscl.strategies.base import StagePlan


def tiny_config(strategy: str, **memory: object) -> ExperimentConfig:
    return load_config(
        "tiny",
        overrides=[
            f"strategy.name={strategy}",
            "train.epochs=2",
            "model.channels=[2, 4, 8]",
            "train.patch_size=[8, 8, 8]",
            {"memory": {"per_center_quota": 1, **memory}},
        ],
    )


class Recorder(StudyObserver):
    """Records every event of the loop, and the train cases each stage saw."""

    def __init__(self) -> None:
        self.started: list[StagePlan] = []
        self.epochs: list[tuple[str, int]] = []
        self.outcomes: list[StageOutcome] = []
        self.weights: list[dict[str, torch.Tensor]] = []

    def stage_started(self, stage: StagePlan) -> None:
        self.started.append(stage)

    def epoch_finished(self, stage: StagePlan, epoch: int, metrics: dict[str, float]) -> None:
        self.epochs.append((stage.name, epoch))

    def stage_finished(self, outcome: StageOutcome, model: torch.nn.Module) -> None:
        self.outcomes.append(outcome)
        self.weights.append({k: v.detach().clone() for k, v in model.state_dict().items()})


def study(dataset: Path, cfg: ExperimentConfig, seed: int = 0):
    recorder = Recorder()
    with PreparedDataset(dataset) as data:
        result = run_study(data, cfg, seed, recorder)
    return result, recorder


def test_finetune_fills_one_row_per_center(blob_dataset: Path) -> None:
    result, recorder = study(blob_dataset, tiny_config("finetune"))
    assert result.order == ["Big", "Mid", "Small"]  # descending by subjects
    assert result.matrix.shape == (3, 3)
    assert ((result.matrix >= 0) & (result.matrix <= 1)).all()
    assert [s.name for s in recorder.started] == ["stage1-Big", "stage2-Mid", "stage3-Small"]
    assert recorder.epochs == [(f"stage{i}-{c}", e) for i, c in enumerate(result.order, 1) for e in (0, 1)]
    assert result.metrics == list(DEFAULT_METRICS)
    for metric in result.metrics:
        assert set(result.baseline[metric]) == {"Big", "Mid", "Small"}
        assert result.matrix_of(metric).shape == (3, 3)
        assert set(recorder.outcomes[0].per_case[metric]) == {"Big", "Mid", "Small"}
    np.testing.assert_array_equal(result.matrix, result.matrix_of("dice"))


def test_replay_gives_the_same_r_matrix_whatever_the_backend(blob_dataset: Path, tmp_path: Path) -> None:
    matrices = []
    for backend in ("ram", "hdf5", "zarr"):
        cfg = tiny_config("replay", backend=backend, path=str(tmp_path / backend))
        result, recorder = study(blob_dataset, cfg)
        matrices.append(result.matrix)
        manifests = [o.memory_manifest for o in recorder.outcomes]
        assert [len(m["samples"]) for m in manifests] == [1, 2, 3]  # quota 1 per center
        assert {s["center"] for s in manifests[-1]["samples"]} == {"Big", "Mid", "Small"}
    np.testing.assert_array_equal(matrices[0], matrices[1])
    np.testing.assert_array_equal(matrices[0], matrices[2])


def test_stage_plans_of_every_strategy(blob_dataset: Path) -> None:
    with PreparedDataset(blob_dataset) as data:
        plans = {
            name: plan_study(data, tiny_config(name), 0).strategy.plan(["Big", "Mid", "Small"])
            for name in ("single", "finetune", "cumulative", "joint")
        }
    assert [p.train_centers for p in plans["single"]] == [("Big",), ("Mid",), ("Small",)]
    assert all(p.fresh for p in plans["single"])
    assert [p.fresh for p in plans["finetune"]] == [True, False, False]
    assert [p.train_centers for p in plans["cumulative"]] == [
        ("Big",),
        ("Big", "Mid"),
        ("Big", "Mid", "Small"),
    ]
    assert all(p.fresh for p in plans["cumulative"])
    assert [(p.center, p.train_centers) for p in plans["joint"]] == [("joint", ("Big", "Mid", "Small"))]


def test_joint_is_one_stage_scored_on_every_center(blob_dataset: Path) -> None:
    result, _ = study(blob_dataset, tiny_config("joint"))
    assert result.kind == "joint"
    assert result.matrix.shape == (1, 3)


def test_single_models_start_fresh(blob_dataset: Path) -> None:
    _, recorder = study(blob_dataset, tiny_config("single"))
    assert len(recorder.weights) == 3
    key = next(iter(recorder.weights[0]))
    assert not torch.equal(recorder.weights[0][key], recorder.weights[1][key])


def test_encoder_carry_over_reinitialises_the_decoder() -> None:
    from mscl.models.unet import build_model, split_encoder_decoder

    cfg = tiny_config("finetune")
    cfg.strategy.carry_over = "encoder"
    initial = build_model(cfg.model, seed=0)
    trained = build_model(cfg.model, seed=1)  # stands for the weights after stage 1
    before = {k: v.clone() for k, v in trained.state_dict().items()}
    second = StagePlan(1, "Mid", ("Mid",), fresh=False)
    carried = stage_model(second, trained, initial, cfg, seed=0)
    encoder, decoder = split_encoder_decoder(carried)
    params = dict(carried.named_parameters())
    assert all(torch.equal(params[name], before[name]) for name in encoder)
    assert all(not torch.equal(params[name], before[name]) for name in decoder if params[name].numel() > 1)
    cfg.strategy.carry_over = "full"
    kept = stage_model(second, build_model(cfg.model, seed=1), initial, cfg, seed=0)
    assert all(torch.equal(v, before[k]) for k, v in kept.state_dict().items())


@pytest.mark.parametrize("order", ["Small,Big,Mid", "random"])
def test_orders(blob_dataset: Path, order: str) -> None:
    cfg = tiny_config("finetune")
    cfg.protocol.order = order
    with PreparedDataset(blob_dataset) as data:
        setup = plan_study(data, cfg, seed=3)
    assert sorted(setup.order) == ["Big", "Mid", "Small"]
    if order != "random":
        assert setup.order == order.split(",")
