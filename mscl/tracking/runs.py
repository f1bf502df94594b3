"""Writing a study to MLflow (stage contract 2): a parent run per (strategy, seed), a nested run per stage.

Runs are created through MLflow's fluent API, so MLflow sets its own source and git tags; everything else is
logged in batches through :class:`mlflow.tracking.MlflowClient` against explicit run ids.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import torch
from mlflow.entities import Metric, Param, Run, RunTag
from mlflow.tracking import MlflowClient

from mscl.config import ExperimentConfig
from mscl.data.dataset import PreparedDataset
from mscl.protocol import metrics as cl
from mscl.protocol.loop import StageOutcome, StudyResult, StudySetup
from mscl.protocol.observers import StudyObserver
from mscl.strategies.base import StagePlan
from mscl.tracking.lineage import CHECKPOINT_SHA_TAG, file_sha256, log_lineage, start_run_options
from mscl.tracking.rmatrix import RMatrix, log_r_matrix
from mscl.tracking.uri import DEFAULT_CONNECT_TIMEOUT_S, connect_tracking, sqlite_path

CHECKPOINT_PATH = "checkpoint/model.pt"
MAX_BATCH = 900  # MLflow accepts at most 1000 metrics per log_batch call


def _now_ms() -> int:
    return int(time.time() * 1000)


def log_metrics(client: MlflowClient, run_id: str, values: dict[str, float], step: int = 0) -> None:
    """Log many metrics in as few ``log_batch`` calls as possible."""
    stamp = _now_ms()
    batch = [Metric(key, float(value), stamp, step) for key, value in values.items()]
    for start in range(0, len(batch), MAX_BATCH):
        client.log_batch(run_id, metrics=batch[start : start + MAX_BATCH])


class MlflowStudyObserver(StudyObserver):
    """Turns the stage loop's events into nested MLflow runs under one parent run.

    Args:
        client: client of the tracking store.
        parent_run_id: the study's parent run.
        cfg: the resolved configuration (the checkpoint records the model settings).
        reattach: stage index -> an existing, unfinished stage run to continue (resume).
    """

    def __init__(
        self,
        client: MlflowClient,
        parent_run_id: str,
        cfg: ExperimentConfig,
        reattach: dict[int, str] | None = None,
    ) -> None:
        self.client, self.parent_run_id, self.cfg = client, parent_run_id, cfg
        self.reattach = dict(reattach or {})
        self._stage_run: str | None = None

    def stage_started(self, stage: StagePlan) -> None:
        """Open the nested run ``stage<k>-<center>`` (or re-open the one being resumed)."""
        existing = self.reattach.pop(stage.index, None)
        if existing is not None:
            self._stage_run = mlflow.start_run(run_id=existing, nested=True).info.run_id
            return
        run = mlflow.start_run(run_name=stage.name, nested=True, parent_run_id=self.parent_run_id)
        self._stage_run = run.info.run_id
        tags = {
            "mscl.stage": str(stage.index + 1),
            "mscl.center": stage.center,
            "mscl.train_centers": ",".join(stage.train_centers),
        }
        self.client.log_batch(self._stage_run, tags=[RunTag(k, v) for k, v in tags.items()])

    def epoch_finished(self, stage: StagePlan, epoch: int, metrics: dict[str, float]) -> None:
        """Log the epoch's training metrics in one batch (step = epoch)."""
        assert self._stage_run is not None, "epoch_finished outside a stage"
        log_metrics(self.client, self._stage_run, {f"train/{k}": v for k, v in metrics.items()}, step=epoch)

    def stage_finished(self, outcome: StageOutcome, model: torch.nn.Module) -> None:
        """Log the R row, the checkpoint and the memory manifest; close the stage run."""
        run_id = self._stage_run
        assert run_id is not None, "stage_finished without stage_started"
        row = {f"test_dice/{center}": score for center, score in outcome.scores.items()}
        timings = {f"time/{part}_s": seconds for part, seconds in outcome.timings.items()}
        log_metrics(self.client, run_id, {**row, **timings, "stage_seconds": outcome.seconds})
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.pt"
            torch.save({"state_dict": model.state_dict(), "model": self.cfg.model.model_dump()}, path)
            self.client.log_artifact(run_id, str(path), artifact_path="checkpoint")
            self.client.set_tag(run_id, CHECKPOINT_SHA_TAG, file_sha256(path))
            if outcome.memory_manifest is not None:
                self.client.log_dict(run_id, outcome.memory_manifest, "memory_manifest.json")
            self.client.log_dict(run_id, outcome.per_case, "per_case_dice.json")
        mlflow.end_run()
        self.client.set_tag(self.parent_run_id, "mscl.finished_stages", str(outcome.stage.index + 1))
        self._stage_run = None


def ensure_experiment(name: str) -> str:
    """Make ``name`` the active experiment, creating it if needed; returns its id.

    With a ``sqlite:///`` store, a new experiment keeps its artifacts in ``mlartifacts/`` beside the
    database file (MLflow would otherwise write ``./mlruns`` into whatever folder the command runs in).
    """
    client = MlflowClient()
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        database = sqlite_path(mlflow.get_tracking_uri())
        location = (database.resolve().parent / "mlartifacts").as_uri() if database else None
        experiment_id = client.create_experiment(name, artifact_location=location)
    else:
        experiment_id = experiment.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


@contextmanager
def study_run(
    cfg: ExperimentConfig,
    seed: int,
    setup: StudySetup,
    dataset: PreparedDataset,
    resume_run_id: str | None = None,
) -> Iterator[tuple[MlflowClient, str]]:
    """Open the parent run ``<strategy>-seed<seed>`` with tags, params, config and dataset manifest.

    With ``resume_run_id`` the existing parent run is re-opened instead (nothing is logged again). An
    interruption (Ctrl-C, SIGTERM) ends every open run as KILLED, any other error as FAILED.
    """
    ensure_experiment(cfg.tracking.experiment)
    if resume_run_id is not None:
        run = mlflow.start_run(run_id=resume_run_id, **start_run_options(cfg, resume=True))
    else:
        run = mlflow.start_run(run_name=f"{cfg.strategy.name}-seed{seed}", **start_run_options(cfg))
    client, run_id = MlflowClient(), run.info.run_id
    try:
        if resume_run_id is None:
            _log_study_start(client, run_id, cfg, seed, setup, dataset)
        yield client, run_id
    except KeyboardInterrupt:
        _end_open_runs("KILLED")
        raise
    except BaseException:
        _end_open_runs("FAILED")
        raise
    _end_open_runs("FINISHED")


def _end_open_runs(status: str) -> None:
    """End every active run (stage runs first, then the parent) with ``status``."""
    while mlflow.active_run() is not None:
        mlflow.end_run(status)


def _log_study_start(
    client: MlflowClient,
    run_id: str,
    cfg: ExperimentConfig,
    seed: int,
    setup: StudySetup,
    dataset: PreparedDataset,
) -> None:
    tags = {
        "mscl.strategy": cfg.strategy.name,
        "mscl.kind": setup.strategy.kind,
        "mscl.seed": str(seed),
        "mscl.order": ",".join(setup.order),
        "mscl.order_kind": setup.order_kind,
        "mscl.dataset_digest": dataset.manifest.digest(),
        "mscl.dataset": str(dataset.directory.resolve()),
        "mscl.finished_stages": "0",
    }
    params = {**cfg.flat(), "seed": str(seed)}
    client.log_batch(
        run_id,
        params=[Param(k, v[:6000]) for k, v in params.items()],
        tags=[RunTag(k, v) for k, v in tags.items()],
    )
    client.log_text(run_id, cfg.to_yaml(), "config.yaml")
    client.log_dict(run_id, json.loads(dataset.manifest.model_dump_json()), "dataset.json")
    log_lineage(client, run_id, cfg, seed, dataset)


def log_study_result(client: MlflowClient, run_id: str, result: StudyResult, wall_s: float) -> RMatrix:
    """Log ``r_matrix.json`` and the continual metrics on the parent run."""
    rmatrix = RMatrix(
        strategy=result.strategy,
        kind=result.kind,
        seed=result.seed,
        order=[s.stage.center for s in result.stages],
        centers=result.centers,
        matrix=result.matrix.tolist(),
        baseline=[result.baseline[c] for c in result.centers],
        per_case={s.stage.index: s.per_case for s in result.stages},
    )
    log_r_matrix(client, run_id, rmatrix)
    log_metrics(client, run_id, {**study_metrics(result), "wall_time_s": wall_s})
    return rmatrix


def study_metrics(result: StudyResult) -> dict[str, float]:
    """Continual metrics of a study (BWT family only for stage sequences over the centers)."""
    r, order, centers = result.matrix, [s.stage.center for s in result.stages], result.centers
    values: dict[str, Any] = {"acc": cl.acc(r)}
    if result.kind in ("continual", "cumulative") and len(order) > 1:
        values |= {
            "bwt": cl.bwt(r, order, centers),
            "fwt": cl.fwt(r, order, centers, [result.baseline[c] for c in centers]),
            "forgetting": cl.forgetting(r, order, centers),
        }
        values |= {f"bwt/{c}": v for c, v in cl.per_center_bwt(r, order, centers).items()}
    for i, mean in enumerate(cl.zero_shot_means(r)):
        values[f"zero_shot_dice/stage{i + 1}"] = mean
    return {k: float(v) for k, v in values.items()}


def use_tracking_uri(uri: str | None, timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S) -> str:
    """Point MLflow's fluent API at the tracking store, failing fast when a server does not answer.

    See :func:`mscl.tracking.uri.connect_tracking`.
    """
    resolved = connect_tracking(uri, timeout_s)
    mlflow.set_tracking_uri(resolved)
    return resolved


def log_evaluation(
    client: MlflowClient,
    source: Run,
    dataset: PreparedDataset,
    scores: dict[str, dict[str, float]],
    split: str,
) -> str:
    """Log an evaluation of ``source``'s checkpoint as a run ``evaluate-<source name>``; returns its id."""
    name = f"evaluate-{source.info.run_name or source.info.run_id[:8]}"
    run = client.create_run(
        source.info.experiment_id,
        run_name=name,
        tags={
            "mscl.kind": "evaluate",
            "mscl.source_run": source.info.run_id,
            "mscl.split": split,
            "mscl.dataset": str(dataset.directory.resolve()),
            "mscl.dataset_digest": dataset.manifest.digest(),
        },
    )
    run_id = run.info.run_id
    means = {f"test_dice/{c}": float(np.nanmean(list(v.values()))) for c, v in scores.items() if v}
    log_metrics(client, run_id, means)
    client.log_dict(run_id, scores, "per_case_dice.json")
    client.set_terminated(run_id)
    return run_id
