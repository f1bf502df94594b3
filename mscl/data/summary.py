"""A per-center summary of a prepared dataset, printed by ``mscl prepare``."""

from __future__ import annotations

import numpy as np
from rich import box
from rich.table import Table

from mscl.data.manifest import CaseRecord, DatasetManifest
from mscl.words import counted

COLUMNS: tuple[str, ...] = (
    "center",
    "subjects",
    "cases",
    "contrasts",
    "train/test",
    "shape",
    "mm",
    "lesion mL",
)


def summary_table(manifest: DatasetManifest) -> Table:
    """One row per center (manifest order): subjects, cases, contrasts, train/test subjects, and the
    median shape, spacing and soft lesion volume of its cases."""
    table = Table(
        title=f"{manifest.name}: {counted(len(manifest.cases), 'case')}, store {manifest.store}",
        caption="shape, spacing (mm) and lesion volume: medians over each center's cases",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        padding=(0, 1, 0, 0),
        pad_edge=False,
    )
    for index, column in enumerate(COLUMNS):
        table.add_column(column, justify="left" if index in (0, 3) else "right", min_width=len(column))
    for center in manifest.centers:
        table.add_row(center.name, *center_row(manifest.cases_of(center.name)))
    return table


def center_row(cases: list[CaseRecord]) -> list[str]:
    """The summary cells (after the center name) of one center's cases."""
    subjects = {case.subject: case.split for case in cases}
    splits = list(subjects.values())
    contrasts = sorted({case.contrast for case in cases})
    shape = np.median([case.shape for case in cases], axis=0)
    spacing = np.median([case.spacing for case in cases], axis=0)
    return [
        str(len(subjects)),
        str(len(cases)),
        ", ".join(contrasts),
        f"{splits.count('train')}/{splits.count('test')}",
        "x".join(f"{value:g}" for value in shape),
        "x".join(f"{value:.2g}" for value in spacing),
        f"{np.median([case.lesion_ml for case in cases]):.2f}",
    ]
