"""``mscl audit``: check that everything a logged study came from still matches what the run recorded."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from mscl.tracking.audit import CheckResult


def audit(
    run_id: Annotated[str, typer.Argument(help="Parent run of a (strategy, seed) study.")],
    data: Annotated[
        Path | None,
        typer.Option("--data", "-d", help="Dataset directory to verify (default: tag mscl.dataset)."),
    ] = None,
    tracking_uri: Annotated[
        str | None,
        typer.Option("--tracking-uri", help="Default: MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here."),
    ] = None,
) -> None:
    """Audit a run: source, config, dataset, packages, checkpoints and R matrix; exit 1 if a check fails."""
    from mscl.tracking.audit import audit_run

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one table, no download bars
    results = audit_run(run_id, data, tracking_uri)
    Console().print(audit_table(run_id, results))
    if not all(result.passed for result in results):
        raise typer.Exit(1)


def audit_table(run_id: str, results: list[CheckResult]) -> Table:
    """The audit as a rich table: one row per check, PASS or FAIL, and the evidence."""
    failed = sum(not result.passed for result in results)
    verdict = "[green]all checks pass[/]" if not failed else f"[red]{failed} check(s) fail[/]"
    table = Table(title=f"audit of run {run_id}: {verdict}")
    for column in ("check", "result", "detail"):
        table.add_column(column)
    for result in results:
        mark = "[green]PASS[/]" if result.passed else "[red]FAIL[/]"
        table.add_row(result.name, mark, result.detail)
    return table
