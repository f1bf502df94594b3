"""``mscl memory inspect``: which cases a replay memory holds, why, and whether they are intact."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from mscl.words import counted

if TYPE_CHECKING:
    from mscl.memory_backends.base import SampleMeta

app = typer.Typer(no_args_is_help=True, help="Inspect replay memories.")


def _center_table(center: str, rows: list[tuple[str, SampleMeta]], bad: set[str] | None) -> Table:
    subjects = len({meta.subject for _, meta in rows})
    megabytes = sum(meta.nbytes for _, meta in rows) / 1e6
    table = Table(
        title=f"{center}: {counted(len(rows), 'case')}, {counted(subjects, 'subject')}, {megabytes:.1f} MB",
        title_justify="left",
    )
    for column in ("key", "subject", "contrast", "lesion voxels", "MB", "reason", "added (UTC)"):
        table.add_column(column, justify="right" if column in ("lesion voxels", "MB") else "left")
    if bad is not None:
        table.add_column("check")
    for key, meta in rows:
        cells = [
            key,
            meta.subject,
            meta.contrast,
            str(meta.lesion_voxels),
            f"{meta.nbytes / 1e6:.2f}",
            meta.reason,
            meta.added.strftime("%Y-%m-%d %H:%M") if meta.added else "",
        ]
        if bad is not None:
            cells.append("[red]CORRUPT[/red]" if key in bad else "ok")
        table.add_row(*cells)
    return table


@app.command("inspect")
def inspect(
    path: Annotated[Path, typer.Argument(help="Memory store: a .h5 file or a zarr directory.")],
    backend: Annotated[
        str | None, typer.Option("--backend", "-b", help="Backend name; default: detected from the path.")
    ] = None,
    verify: Annotated[
        bool, typer.Option("--verify", help="Re-check every checksum; exit code 1 if any sample is corrupt.")
    ] = False,
) -> None:
    """Print a table per center (cases, subjects, bytes, selection reasons)."""
    from mscl.memory_backends.registry import detect_backend, open_backend

    name = backend or detect_backend(path)
    console = Console()
    with open_backend(name, path, mode="r") as store:
        by_center: dict[str, list[tuple[str, SampleMeta]]] = defaultdict(list)
        for key in store:
            meta = store.meta(key)
            by_center[meta.center].append((key, meta))
        bad = set(store.verify()) if verify else None
    samples = counted(sum(map(len, by_center.values())), "sample")
    console.print(f"{path} ({name}): {samples} in {counted(len(by_center), 'center')}")
    for center in sorted(by_center):
        console.print(_center_table(center, by_center[center], bad))
    if bad:
        typer.echo(f"corrupt samples: {', '.join(sorted(bad))}", err=True)
        raise typer.Exit(1)
    if verify:
        console.print("all checksums ok")
