"""The per-center summary table printed by ``mscl prepare``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rich.console import Console

from mscl.data.summary import center_row, summary_table
from mscl.data.writer import lesion_stats

from .volumes import build_tiny, head_and_lesion


def test_center_row_counts_and_medians(tmp_path: Path) -> None:
    manifest = build_tiny(tmp_path / "ds")
    cases = manifest.cases_of("B")
    splits = [case.split for case in cases]
    _, label = head_and_lesion()
    assert center_row(cases) == [
        "3",
        "3",
        "FLAIR",
        f"{splits.count('train')}/{splits.count('test')}",
        "12x14x10",
        "1x1x1",
        f"{lesion_stats(label.astype(np.float16), (1, 1, 1))[1]:.2f}",
    ]
    assert splits.count("test") == 1


def test_table_has_one_row_per_center(tmp_path: Path) -> None:
    table = summary_table(build_tiny(tmp_path / "ds"))
    assert table.row_count == 2
    console = Console(record=True, width=160)
    console.print(table)
    text = console.export_text()
    assert "lesion mL" in text
    assert text.count("FLAIR") == 2
