"""Resuming an interrupted study from its MLflow parent run.

Finished stage runs give their R rows (``test/<metric>/<center>``), per-case scores and, for the last one,
the weights and strategy state to carry on (the checkpoint verified against its logged sha256); an
unfinished stage run is re-attached and continues from its local resume point
(:mod:`mscl.protocol.checkpoints`) or, without one, from the stage's start.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from mscl.config import ExperimentConfig
from mscl.errors import ConfigError, TrackingError
from mscl.protocol.checkpoints import StateStore
from mscl.protocol.loop import ResumePoint, StageCheckpoint
from mscl.protocol.results import StageOutcome
from mscl.strategies.base import StagePlan
from mscl.tracking import tree
from mscl.tracking.checkpoints import get_run, load_checkpoint, per_case_scores, stage_runs
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
    """Refuse to resume a finished run, or one whose configuration or dataset differs from the run's."""
    run_id = run.info.run_id
    if run.info.status == "FINISHED":
        raise ConfigError(f"cannot resume run {run_id}: it is FINISHED, there is nothing left to train")
    if current.protocol.seeds != logged.protocol.seeds:
        raise ConfigError(
            f"cannot resume run {run_id}: a resumed run keeps its seed {run.data.tags.get(tree.SEED_TAG)}; "
            "drop --seeds, --seed-list and protocol.seeds"
        )
    changes = config_changes(logged, current)
    if changes:
        raise ConfigError(f"cannot resume run {run.info.run_id}: config differs: {'; '.join(changes)}")
    logged_digest = run.data.tags.get(tree.DATASET_DIGEST_TAG)
    if logged_digest != digest:
        raise ConfigError(
            f"cannot resume run {run.info.run_id}: dataset digest differs "
            f"({(logged_digest or 'none')[:12]} logged, {digest[:12]} on disk)"
        )


def load_resume_info(
    client: MlflowClient, parent: Run, plan: Sequence[StagePlan], store: StateStore
) -> ResumeInfo:
    """Read the finished and unfinished stage runs of ``parent``: every artifact and resume point it needs
    is read and verified here, before the run is re-opened.

    Raises:
        TrackingError: when the finished stages are not a prefix of the plan.
        ArtifactCorrupted: a checkpoint or per-case scores not matching their logged sha256.
        ResumePointCorrupted: a local resume point not matching its sha256.
    """
    by_index = {int(r.data.tags[tree.STAGE_TAG]) - 1: r for r in stage_runs(client, parent)}
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
        store.clear(stage.index)  # a kill after the stage run ended may have left its resume point behind
    later = sorted(i for i in by_index if i > len(info.point.finished))
    if later:
        raise TrackingError(f"run {parent.info.run_id}: stage runs {later} exist after an unfinished stage")
    if info.point.finished:  # read (and verified) now, before the run is re-opened
        checkpoint = _stage_checkpoint(client, by_index[max(info.point.finished)])
        info.point.last_checkpoint = lambda: checkpoint
    return info


def _finished_outcome(client: MlflowClient, run: Run, stage: StagePlan) -> StageOutcome:
    scores = tree.test_scores(run.data.metrics)
    per_case = per_case_scores(client, run)
    return StageOutcome(stage, scores, per_case, [], run.data.metrics.get(tree.STAGE_SECONDS, 0.0))


def _stage_checkpoint(client: MlflowClient, run: Run) -> StageCheckpoint:
    payload = load_checkpoint(client, run)
    return StageCheckpoint(payload["state_dict"], payload.get("strategy", {}))
