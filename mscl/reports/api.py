"""``build_report``: read an experiment's runs from MLflow, write the report directory, log it back."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mlflow.tracking import MlflowClient

from mscl.errors import ConfigError, TrackingError
from mscl.protocol.kinds import SEQUENTIAL_KINDS
from mscl.reports.compile import compile_runs
from mscl.reports.document import ReportContext, write_report
from mscl.tracking import tree
from mscl.tracking.queries import PAGE_SIZE, ParentRun, SkippedRun, read_parent_runs
from mscl.tracking.uri import connect_tracking, sqlite_path

OrderChoice = Literal["descending", "random", "all"]
ORDER_CHOICES = ("descending", "random", "all")


@dataclass(frozen=True)
class ReportResult:
    """What :func:`build_report` wrote and read."""

    out_dir: Path
    files: list[Path]
    run_id: str | None
    runs: int
    skipped: list[SkippedRun]


def build_report(
    experiment: str,
    out_dir: Path,
    tracking_uri: str | None = None,
    strategies: Sequence[str] | None = None,
    order: OrderChoice = "all",
    *,
    page_size: int = PAGE_SIZE,
    log_to_mlflow: bool = True,
) -> ReportResult:
    """Build the report of an experiment's finished parent runs.

    Args:
        experiment: MLflow experiment name.
        out_dir: report directory (created; files of the same name are replaced).
        tracking_uri: explicit tracking URI (else MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in cwd).
        strategies: only these strategies (all when None).
        order: only runs trained in the ``descending`` or ``random`` order, or ``all``; the single-domain
            and joint references do not depend on the order and are always kept.
        page_size: runs fetched per MLflow search page.
        log_to_mlflow: also log the files as artifacts of a run named ``report`` in the experiment.

    Raises:
        ConfigError: for an unknown ``order``.
        TrackingError: unreachable store, unknown experiment, or no finished run to report on.
    """
    if order not in ORDER_CHOICES:
        raise ConfigError(f"--order must be one of {', '.join(ORDER_CHOICES)}, not {order!r}")
    uri = connect_tracking(tracking_uri)
    db = sqlite_path(uri)
    if db is not None and not db.is_file():
        raise TrackingError(f"no MLflow database at {db}; pass --tracking-uri or set MLFLOW_TRACKING_URI")
    client = MlflowClient(tracking_uri=uri)
    found = read_parent_runs(client, experiment, page_size)
    runs, notes = select_runs(found.runs, strategies, order)
    if not runs:
        skipped = f"; {len(found.skipped)} skipped, first: {found.skipped[0].reason}" if found.skipped else ""
        raise TrackingError(f"experiment {experiment!r} has no finished runs to report on{skipped}")
    compiled = compile_runs(runs)
    compiled.notes[:0] = notes
    out_dir.mkdir(parents=True, exist_ok=True)
    files = write_report(compiled, ReportContext(experiment, uri, runs, found.skipped), out_dir)
    run_id = _log_report(client, found.experiment_id, files, len(runs)) if log_to_mlflow else None
    return ReportResult(out_dir, files, run_id, len(runs), found.skipped)


def select_runs(
    runs: Sequence[ParentRun], strategies: Sequence[str] | None, order: OrderChoice
) -> tuple[list[ParentRun], list[str]]:
    """The runs a report covers, with notes on requested strategies that have none."""
    notes = []
    if strategies:
        missing = sorted(set(strategies) - {r.strategy for r in runs})
        if missing:
            notes.append(f"No finished runs for the requested strategies: {', '.join(missing)}.")
        runs = [r for r in runs if r.strategy in strategies]
    if order != "all":
        runs = [r for r in runs if r.order_kind == order or r.rmatrix.kind not in SEQUENTIAL_KINDS]
    return list(runs), notes


def _log_report(client: MlflowClient, experiment_id: str, files: list[Path], runs: int) -> str:
    """Log the report files on a run ``report`` (tagged ``mscl.kind=report``, never read as a parent)."""
    run = client.create_run(
        experiment_id, run_name=tree.REPORT_RUN_NAME, tags={tree.KIND_TAG: tree.REPORT_KIND}
    )
    run_id = run.info.run_id
    try:
        client.log_param(run_id, "runs", runs)
        for path in files:
            client.log_artifact(run_id, str(path))
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id)
    return run_id
