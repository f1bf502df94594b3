"""``mscl report``: tables, plots and a self-contained HTML report from an experiment's MLflow runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, cast

import typer
from rich.console import Console

from mscl.errors import DataError, TrackingError
from mscl.words import counted


def report(
    experiment: Annotated[str, typer.Option("--experiment", "-e", help="MLflow experiment name.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Report directory to write.")],
    tracking_uri: Annotated[
        str | None,
        typer.Option("--tracking-uri", help="Default: MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here."),
    ] = None,
    strategies: Annotated[
        str | None, typer.Option("--strategies", help="Comma-separated strategies (default: all).")
    ] = None,
    order: Annotated[
        str, typer.Option("--order", help="Runs trained in the descending or random order, or all.")
    ] = "all",
    no_log: Annotated[bool, typer.Option("--no-log", help="Do not log the report to MLflow.")] = False,
) -> None:
    """Build report.md, report.html, CSV/LaTeX tables and PNG plots across seeds."""
    from mscl.reports.api import OrderChoice, build_report

    names = [s.strip() for s in strategies.split(",") if s.strip()] if strategies else None
    check_report_folder(out)
    if names:
        _check_strategies(experiment, tracking_uri, names)
    result = build_report(
        experiment, out, tracking_uri, names, cast(OrderChoice, order), log_to_mlflow=not no_log
    )
    console = Console()
    console.print(f"read {counted(result.runs, 'run')}, skipped {len(result.skipped)}")
    for run in result.skipped:
        console.print(f"  skipped {run.name or run.run_id}: {run.reason}", markup=False)
    console.print(f"wrote {len(result.files)} files to {result.out_dir} (open report.html)")
    if result.run_id:
        console.print(f"logged to MLflow run {result.run_id}")


def check_report_folder(out: Path) -> None:
    """The report folder exists or is a new folder in an existing one (never a chain of new folders).

    Raises:
        DataError: ``out`` is a file, or its parent folder does not exist.
    """
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: exists and is not a folder; choose another --out")
    if not out.exists() and not out.parent.is_dir():
        raise DataError(f"{out.parent}: folder does not exist; create it or choose another --out")


def _check_strategies(experiment: str, tracking_uri: str | None, names: list[str]) -> None:
    """Refuse ``--strategies`` that name no strategy with runs in the experiment, saying which it has.

    Raises:
        TrackingError: none of ``names`` has a parent run in ``experiment`` (or the experiment is unknown).
    """
    from mlflow.tracking import MlflowClient

    from mscl.tracking.queries import parent_strategies
    from mscl.tracking.uri import connect_tracking, sqlite_path

    uri = connect_tracking(tracking_uri)
    database = sqlite_path(uri)
    if database is not None and not database.is_file():
        return  # the report names the missing database itself
    found = parent_strategies(MlflowClient(tracking_uri=uri), experiment)
    if not found & set(names):
        raise TrackingError(
            f"experiment {experiment!r} has no runs of --strategies {', '.join(names)}; "
            f"its runs are of: {', '.join(sorted(found)) or 'no strategy'}"
        )
