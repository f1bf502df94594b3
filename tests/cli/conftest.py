"""Raw NIfTI data shared by the command tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.test_prepare_cli import SUBJECTS, write_case, write_rows


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    """``raw/cases.csv`` listing s1..s4 in centers X and Y, FLAIR images ``<s>.nii.gz`` and ``<s>_mask``."""
    folder = tmp_path / "raw"
    for seed, subject in enumerate(SUBJECTS):
        write_case(folder / f"{subject}.nii.gz", folder / f"{subject}_mask.nii.gz", seed)
    rows = [
        {"subject": s, "center": c, "contrast": "FLAIR", "image": f"{s}.nii.gz", "label": f"{s}_mask.nii.gz"}
        for s, c in SUBJECTS.items()
    ]
    write_rows(folder / "cases.csv", rows)
    return folder
