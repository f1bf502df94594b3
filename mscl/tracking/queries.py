"""Reading the parent runs of an experiment (stage contract 2) for the reporter.

A parent run has the tag ``mscl.strategy``, not the tag ``mscl.stage`` (stage runs carry their study's
strategy too), and no ``mlflow.parentRunId`` other than its ``mlflow run`` project run (tag
``mscl.project_run``) or its study run; stage runs and the ``report`` run are ignored. Parent runs
that cannot be used are returned as :class:`SkippedRun` with the reason, so that a report can list them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from mlflow.entities import Run, RunStatus, ViewType
from mlflow.tracking import MlflowClient

from mscl.data.manifest import IDENTIFIER
from mscl.errors import ArtifactCorrupted, TrackingError
from mscl.tracking.rmatrix import RMatrix, load_r_matrix
from mscl.tracking.tree import (
    EXTENSIONS_TAG,
    ORDER_KIND_TAG,
    PARENT_TAG,
    PROJECT_RUN_TAG,
    STAGE_TAG,
    STRATEGY_TAG,
    STUDY_RUN_TAG,
)

PAGE_SIZE = 1000
EXTENDED_ORDER_KIND = "extended"
"""The order kind a report gives a study that ``mscl extend`` added centers to."""


@dataclass(frozen=True)
class ParentRun:
    """A finished (strategy, seed) run with its R matrix."""

    run_id: str
    name: str
    order_kind: str
    rmatrix: RMatrix
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def strategy(self) -> str:
        """The strategy name (from ``r_matrix.json``)."""
        return self.rmatrix.strategy

    @property
    def seed(self) -> int:
        """The seed (from ``r_matrix.json``)."""
        return self.rmatrix.seed


@dataclass(frozen=True)
class SkippedRun:
    """A parent run left out of a report, and why."""

    run_id: str
    name: str
    reason: str


@dataclass(frozen=True)
class ExperimentRuns:
    """Every parent run of an experiment: the usable ones and the skipped ones."""

    experiment: str
    experiment_id: str
    runs: list[ParentRun]
    skipped: list[SkippedRun]


def experiment_id(client: MlflowClient, experiment: str) -> str:
    """The id of the experiment named ``experiment``.

    Raises:
        TrackingError: when no such experiment exists.
    """
    found = client.get_experiment_by_name(experiment)
    if found is None:
        known = sorted(e.name for e in client.search_experiments(max_results=50))
        raise TrackingError(f"unknown MLflow experiment {experiment!r}; known: {', '.join(known) or 'none'}")
    return found.experiment_id


def iter_runs(client: MlflowClient, exp_id: str, page_size: int = PAGE_SIZE) -> Iterator[Run]:
    """Every active run of an experiment, oldest first, fetched page by page."""
    token: str | None = None
    while True:
        page = client.search_runs(
            [exp_id],
            run_view_type=ViewType.ACTIVE_ONLY,
            max_results=page_size,
            order_by=["attributes.start_time ASC"],
            page_token=token,
        )
        yield from page
        token = page.token
        if not token:
            return


def is_parent(run: Run) -> bool:
    """A (strategy, seed) parent run: tagged ``mscl.strategy`` but not ``mscl.stage`` (a stage run carries
    its study's strategy too), not nested except under its project run or its study run."""
    tags = run.data.tags
    if STRATEGY_TAG not in tags or STAGE_TAG in tags:
        return False
    return tags.get(PARENT_TAG) in (None, tags.get(PROJECT_RUN_TAG), tags.get(STUDY_RUN_TAG))


def parent_strategies(client: MlflowClient, experiment: str) -> set[str]:
    """The strategies of an experiment's parent runs, read from their tags only (no artifacts).

    Raises:
        TrackingError: when the experiment does not exist.
    """
    exp_id = experiment_id(client, experiment)
    return {run.data.tags[STRATEGY_TAG] for run in iter_runs(client, exp_id) if is_parent(run)}


def read_parent_runs(client: MlflowClient, experiment: str, page_size: int = PAGE_SIZE) -> ExperimentRuns:
    """Read every parent run of ``experiment`` with its R matrix.

    Unfinished runs, runs without a readable ``r_matrix.json`` and older duplicates of the same
    (strategy, seed, order) are skipped with a reason.

    Raises:
        TrackingError: when the experiment does not exist.
        ArtifactCorrupted: a finished run's ``r_matrix.json`` does not match its logged sha256.
    """
    exp_id = experiment_id(client, experiment)
    runs: dict[tuple[str, int, tuple[str, ...]], ParentRun] = {}
    skipped: list[SkippedRun] = []
    for run in iter_runs(client, exp_id, page_size):
        if not is_parent(run):
            continue
        parent, reason = _read_parent(client, run)
        if parent is None:
            skipped.append(SkippedRun(run.info.run_id, run.info.run_name or "", reason))
            continue
        key = (parent.strategy, parent.seed, tuple(parent.rmatrix.order))
        if key in runs:
            old = runs[key]
            skipped.append(SkippedRun(old.run_id, old.name, f"superseded by the later run {parent.run_id}"))
        runs[key] = parent
    ordered = sorted(runs.values(), key=lambda p: (p.strategy, p.order_kind, p.seed))
    return ExperimentRuns(experiment, exp_id, ordered, skipped)


def _read_parent(client: MlflowClient, run: Run) -> tuple[ParentRun | None, str]:
    status = run.info.status
    if status != RunStatus.to_string(RunStatus.FINISHED):
        return None, f"unfinished (status {status})"
    try:
        rmatrix = load_r_matrix(client, run.info.run_id, run.info.artifact_uri, tags=run.data.tags)
    except ArtifactCorrupted:  # a corrupt or edited r_matrix.json stops the report instead of leaving a gap
        raise
    except TrackingError as exc:
        return None, str(exc).removeprefix(f"run {run.info.run_id}: ")
    tagged = run.data.tags[STRATEGY_TAG]
    if tagged != rmatrix.strategy:
        return None, f"tag {STRATEGY_TAG}={tagged} disagrees with r_matrix.json strategy {rmatrix.strategy}"
    order_kind = run.data.tags.get(ORDER_KIND_TAG, "custom")
    if EXTENSIONS_TAG in run.data.tags:  # its order continues with the added centers: its own section
        order_kind = EXTENDED_ORDER_KIND
    if not IDENTIFIER.fullmatch(order_kind):  # it names report files
        return None, f"tag {ORDER_KIND_TAG}={order_kind!r} is not a name"
    return ParentRun(
        run.info.run_id, run.info.run_name or "", order_kind, rmatrix, dict(run.data.metrics)
    ), ""
