"""``mscl report``: tables, plots and a self-contained HTML report from an experiment's MLflow runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, cast

import typer
from rich.console import Console


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
    result = build_report(
        experiment, out, tracking_uri, names, cast(OrderChoice, order), log_to_mlflow=not no_log
    )
    console = Console()
    console.print(f"read {result.runs} runs, skipped {len(result.skipped)}")
    for run in result.skipped:
        console.print(f"  skipped {run.name or run.run_id}: {run.reason}", markup=False)
    console.print(f"wrote {len(result.files)} files to {result.out_dir} (open report.html)")
    if result.run_id:
        console.print(f"logged to MLflow run {result.run_id}")
