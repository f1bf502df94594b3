"""``mscl shift``: the domain-shift check of a prepared dataset (also printed by ``mscl prepare``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from mscl.cli.options import QuietOption

if TYPE_CHECKING:
    from mscl.data.shift import ShiftMatrix

MATRIX_CAPTION = (
    "mean Dice over the column's test cases of a voxel lookup table over (intensity, smoothed neighbourhood "
    "intensity) fitted on the row's training cases: a proxy, no network is trained; -: no cases"
)
SUMMARY_CAPTION = (
    "own: the domain's own classifier on its test cases; others': the mean of the other domains' classifiers "
    "there; gap: own minus others' (what a model from elsewhere loses on this domain)"
)


def shift_tables(matrix: ShiftMatrix) -> tuple[Table, Table]:
    """The matrix as rich tables: sources as rows and targets as columns (diagonal in bold), then one row
    per domain with its cases, its own and the others' Dice on it and the gap (two tables fit 80 columns)."""
    grid = _table(f"{matrix.dataset}: domain shift", MATRIX_CAPTION)
    summary = _table(f"{matrix.dataset}: shift per domain", SUMMARY_CAPTION)
    for table, header in ((grid, matrix.header()), (summary, matrix.summary_header())):
        for index, column in enumerate(header):
            table.add_column(column, justify="left" if index == 0 else "right", no_wrap=index == 0)
    for row, cells in enumerate(matrix.rows()):
        cells[1 + row] = f"[bold]{cells[1 + row]}[/bold]"  # the diagonal: in-domain
        grid.add_row(*cells)
    for cells in matrix.summary_rows():
        summary.add_row(*cells)
    return grid, summary


def _table(title: str, caption: str) -> Table:
    return Table(
        title=title,
        caption=caption,
        box=box.SIMPLE_HEAD,
        show_edge=False,
        padding=(0, 1, 0, 0),
        pad_edge=False,
    )


def compute_shift(data: Path, quiet: bool) -> ShiftMatrix:
    """The shift matrix of the dataset directory ``data``, with a progress bar over its cases."""
    from mscl.data.manifest import DatasetManifest
    from mscl.data.shift import shift_matrix
    from mscl.progress import ProgressDisplay

    total = len(DatasetManifest.read(data).cases)
    with ProgressDisplay(quiet, transient=True) as display:
        task = display.add_task("shift check", total, unit="cases")
        return shift_matrix(data, on_case=lambda: display.advance(task))


def shift(
    data: Annotated[Path, typer.Option("--data", "-d", help="Prepared dataset directory.")],
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the matrix as JSON to this file (atomically).")
    ] = None,
    quiet: QuietOption = False,
) -> None:
    """Print the domain-shift check: Dice of a cheap proxy segmenter fitted on each (center, contrast)
    and tested on every other, so the shift is visible before a study is run."""
    matrix = compute_shift(data, quiet)
    console = Console()
    console.print(*shift_tables(matrix))
    if json_out is not None:
        matrix.write_json(json_out)
        console.print(f"shift matrix written to {json_out}", soft_wrap=True)
