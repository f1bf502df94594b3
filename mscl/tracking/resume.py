"""Resuming an interrupted study from its MLflow parent run.

Finished stage runs give their R rows (``test_dice/<center>``), per-case scores and, for the last one, the
weights to carry on; an unfinished stage run is re-attached and continues from its local resume point
(:mod:`mscl.protocol.checkpoints`) or, without one, from the stage's start.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from mscl.config import ExperimentConfig
from mscl.errors import ConfigError, TrackingError
from mscl.protocol.checkpoints import StateStore
from mscl.protocol.loop import ResumePoint, StageOutcome
from mscl.strategies.base import StagePlan
from mscl.tracking.checkpoints import PARENT_TAG, get_run
from mscl.tracking.queries import is_parent

IGNORED_ON_RESUME = ("protocol.seeds", "tracking.")


@dataclass
class ResumeInfo:
    """A resume point plus the stage runs to re-attach to."""

    point: ResumePoint = field(default_factory=ResumePoint)
    stage_runs: dict[int, str] = field(default_factory=dict)

    @property
    def finished_stages(self) -> int:
        """Number of stages already finished."""
        return len(self.point.finished)


def parent_run(client: MlflowClient, run_id: str) -> Run:
    """The parent run ``run_id`` of a study, or a clear error."""
    run = get_run(client, run_id)
    if not is_parent(run):
        raise TrackingError(f"run {run_id} is not the parent run of an mscl study")
    return run


def config_changes(logged: ExperimentConfig, current: ExperimentConfig) -> list[str]:
    """Settings that differ between the logged and the current configuration, as ``key (old -> new)``."""
    old, new = logged.flat(), current.flat()
    return [
        f"{key} ({old.get(key)} -> {new.get(key)})"
        for key in sorted(set(old) | set(new))
        if old.get(key) != new.get(key) and not key.startswith(IGNORED_ON_RESUME)
    ]


def check_resumable(run: Run, logged: ExperimentConfig, current: ExperimentConfig, digest: str) -> None:
    """Refuse to resume when the configuration or the dataset differs from the run's."""
    changes = config_changes(logged, current)
    if changes:
        raise ConfigError(f"cannot resume run {run.info.run_id}: config differs: {'; '.join(changes)}")
    logged_digest = run.data.tags.get("mscl.dataset_digest")
    if logged_digest != digest:
        raise ConfigError(
            f"cannot resume run {run.info.run_id}: dataset digest differs "
            f"({(logged_digest or 'none')[:12]} logged, {digest[:12]} on disk)"
        )


def load_resume_info(
    client: MlflowClient, parent: Run, plan: Sequence[StagePlan], store: StateStore
) -> ResumeInfo:
    """Read the finished and unfinished stage runs of ``parent``.

    Raises:
        TrackingError: when the finished stages are not a prefix of the plan.
    """
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.`{PARENT_TAG}` = '{parent.info.run_id}'", max_results=1000
    )
    by_index = {int(r.data.tags["mscl.stage"]) - 1: r for r in children if "mscl.stage" in r.data.tags}
    info = ResumeInfo(ResumePoint())
    for stage in plan:
        run = by_index.get(stage.index)
        if run is None:
            break
        if run.info.status != "FINISHED":
            info.stage_runs[stage.index] = run.info.run_id
            info.point.partial = store.load(stage.index)
            break
        info.point.finished[stage.index] = _finished_outcome(client, run, stage)
    later = sorted(i for i in by_index if i > len(info.point.finished))
    if later:
        raise TrackingError(f"run {parent.info.run_id}: stage runs {later} exist after an unfinished stage")
    if info.point.finished:
        last = by_index[max(info.point.finished)].info.run_id
        info.point.last_weights = lambda: _weights(client, last)
    return info


def _finished_outcome(client: MlflowClient, run: Run, stage: StagePlan) -> StageOutcome:
    metrics = run.data.metrics
    scores = {k.removeprefix("test_dice/"): v for k, v in metrics.items() if k.startswith("test_dice/")}
    with tempfile.TemporaryDirectory() as tmp:
        path = client.download_artifacts(run.info.run_id, "per_case_dice.json", tmp)
        per_case = json.loads(Path(path).read_text(encoding="utf-8"))
    return StageOutcome(stage, scores, per_case, [], metrics.get("stage_seconds", 0.0))


def _weights(client: MlflowClient, run_id: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        path = client.download_artifacts(run_id, "checkpoint/model.pt", tmp)
        return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
