"""Resume: an interrupted study continues from MLflow and ends with the uninterrupted R matrix."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from mscl.api import train_study
from mscl.cli.main import app
from mscl.config import ExperimentConfig
from mscl.errors import StudyInterrupted
from mscl.protocol.observers import StudyObserver
from mscl.protocol.results import StudyResult
from mscl.strategies.base import StagePlan
from mscl.testing.strategies import contract_config
from mscl.tracking.queries import read_parent_runs
from mscl.tracking.rmatrix import load_r_matrix

RESUME = {"train": {"epochs": 3}, "memory": {"backend": "hdf5"}, "tracking": {"experiment": "resume"}}


class InterruptAt(StudyObserver):
    """Raises KeyboardInterrupt when stage ``index`` starts, or after its epoch ``epoch`` (0-based)."""

    def __init__(self, index: int, epoch: int | None = None) -> None:
        self.index, self.epoch = index, epoch

    def stage_started(self, stage: StagePlan) -> None:
        if stage.index == self.index and self.epoch is None:
            raise KeyboardInterrupt

    def epoch_finished(self, stage: StagePlan, epoch: int, metrics: dict[str, float]) -> None:
        if stage.index == self.index and epoch == self.epoch:
            raise KeyboardInterrupt


def config(tmp_path: Path, strategy: str) -> ExperimentConfig:
    return contract_config(strategy, tmp_path, RESUME)


@pytest.fixture(scope="module")
def reference(blob_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, StudyResult]:
    """Uninterrupted studies of fine-tuning and replay."""
    tmp = tmp_path_factory.mktemp("reference")
    return {s: train_study(blob_dataset, config(tmp, s), quiet=True)[0] for s in ("finetune", "replay")}


def interrupted_run(blob_dataset: Path, cfg: ExperimentConfig, observer: StudyObserver) -> str:
    with pytest.raises(StudyInterrupted, match="ended as KILLED"):
        train_study(blob_dataset, cfg, quiet=True, observers=[observer])
    client = MlflowClient(cfg.tracking.uri)
    [parent] = client.search_runs(
        [client.get_experiment_by_name("resume").experiment_id],
        "tags.`mscl.seed` = '0' and tags.`mscl.stage` IS NULL",
    )
    assert parent.info.status == "KILLED"
    return parent.info.run_id


def resume(run_id: str, blob_dataset: Path, cfg: ExperimentConfig, *extra: str) -> tuple[int, str]:
    args = ["train", "--resume", run_id, "--data", str(blob_dataset), "--tracking-uri", cfg.tracking.uri]
    result = CliRunner().invoke(app, [*args, "--quiet", *extra])
    return result.exit_code, result.output + (result.stderr or "")


@pytest.mark.parametrize(
    ("strategy", "index", "epoch"),
    [("finetune", 1, None), ("replay", 2, None), ("replay", 1, 1), ("finetune", 0, 0)],
    ids=["finetune-boundary", "replay-boundary", "replay-mid-stage", "finetune-first-epoch"],
)
def test_resume_gives_the_uninterrupted_r_matrix(
    blob_dataset: Path,
    tmp_path: Path,
    reference: dict[str, StudyResult],
    strategy: str,
    index: int,
    epoch: int | None,
) -> None:
    cfg = config(tmp_path, strategy)
    run_id = interrupted_run(blob_dataset, cfg, InterruptAt(index, epoch))
    code, output = resume(run_id, blob_dataset, cfg)
    assert code == 0, output
    client = MlflowClient(cfg.tracking.uri)
    assert client.get_run(run_id).info.status == "FINISHED"
    resumed = load_r_matrix(client, run_id)
    assert list(resumed.metrics) == reference[strategy].metrics
    for metric in resumed.metrics:
        np.testing.assert_array_equal(resumed.values(metric), reference[strategy].matrix_of(metric))
    stages = client.search_runs(
        [client.get_run(run_id).info.experiment_id], f"tags.mlflow.parentRunId = '{run_id}'"
    )
    assert sorted(r.info.run_name for r in stages) == ["stage1-Big", "stage2-Mid", "stage3-Small"]
    assert {r.info.status for r in stages} == {"FINISHED"}
    for stage in stages:  # a re-attached stage run keeps the params it was created with
        tags, params = stage.data.tags, stage.data.params
        assert (tags["mscl.strategy"], params["stage"], params["epochs"]) == (
            strategy,
            tags["mscl.stage"],
            "3",
        )
    assert [r.run_id for r in read_parent_runs(client, "resume").runs] == [run_id]
    if epoch is not None:  # continued from the resume point after epoch ``epoch - 1``, not from scratch
        [stage] = [r for r in stages if r.data.tags["mscl.stage"] == str(index + 1)]
        steps = sorted(m.step for m in client.get_metric_history(stage.info.run_id, "train/loss"))
        assert steps == sorted([*range(epoch + 1), *range(epoch, 3)])


def test_resume_refuses_a_changed_config(blob_dataset: Path, tmp_path: Path) -> None:
    cfg = config(tmp_path, "finetune")
    run_id = interrupted_run(blob_dataset, cfg, InterruptAt(1))
    code, output = resume(run_id, blob_dataset, cfg, "--epochs", "5")
    assert code == 2
    assert "config differs: train.epochs (3 -> 5)" in output


def test_sigterm_ends_the_runs_as_killed(blob_dataset: Path, tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    command = [
        sys.executable, "-m", "mscl.cli.main", "train", "--data", str(blob_dataset), "--preset", "tiny",
        "--strategy", "finetune", "--epochs", "500", "--set", "model.channels=[2,4,8]",
        "--set", "train.patch_size=[8,8,8]", "--tracking-uri", uri, "--experiment", "sigterm", "--quiet",
    ]  # fmt: skip
    process = subprocess.Popen(command, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    client = MlflowClient(uri)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        experiment = client.get_experiment_by_name("sigterm") if (tmp_path / "mlflow.db").exists() else None
        runs = client.search_runs([experiment.experiment_id], "tags.`mscl.stage` = '1'") if experiment else []
        if runs:
            break
        time.sleep(0.5)
    else:
        process.kill()
        pytest.fail("training never started")
    os.kill(process.pid, signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "--resume" in stderr
    statuses = {r.info.run_name: r.info.status for r in client.search_runs([experiment.experiment_id])}
    assert statuses == {"finetune-seed0": "KILLED", "stage1-Big": "KILLED"}


def test_a_signal_while_the_parent_run_is_created_leaves_it_tagged_killed_and_named(
    blob_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGTERM right after MLflow created the parent run, before mscl learnt its id: the run has its tags
    (created in the same call), ends KILLED, and the message names it (not ``--resume ?``)."""
    import mlflow

    real = mlflow.start_run

    def start_then_sigterm(*args: object, **kwargs: object) -> object:
        run = real(*args, **kwargs)  # type: ignore[arg-type]
        if str(kwargs.get("run_name", "")).startswith("finetune-seed"):
            os.kill(os.getpid(), signal.SIGTERM)
        return run

    monkeypatch.setattr(mlflow, "start_run", start_then_sigterm)
    cfg = config(tmp_path, "finetune")
    with pytest.raises(StudyInterrupted) as caught:
        train_study(blob_dataset, cfg, quiet=True)
    client = MlflowClient(cfg.tracking.uri)
    [parent] = client.search_runs([client.get_experiment_by_name("resume").experiment_id])
    assert parent.info.status == "KILLED"
    assert parent.data.tags["mscl.strategy"] == "finetune" and parent.data.tags["mscl.seed"] == "0"
    assert str(caught.value) == (
        f"interrupted while run {parent.info.run_id} was being set up: it ended as KILLED with nothing "
        "trained; start the study again"
    )
