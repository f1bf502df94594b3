"""Fixtures writing tiny NIfTI volumes (12x14x10) laid out as a BIDS tree or listed in a CSV manifest."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from mscl.config import DataConfig

from .volumes import head_and_lesion

NiftiWriter = Callable[..., Path]
PairWriter = Callable[..., tuple[Path, Path]]


@pytest.fixture
def write_nifti() -> NiftiWriter:
    """Write ``array`` to ``path`` (.nii or .nii.gz) with ``affine`` (default 1 mm identity)."""

    def write(path: Path, array: np.ndarray, affine: np.ndarray | None = None) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(array, np.eye(4) if affine is None else affine), path)
        return path

    return write


@pytest.fixture
def write_pair(write_nifti: NiftiWriter) -> PairWriter:
    """Write a head image and its soft lesion mask as ``<folder>/<stem>.nii.gz`` and ``..._mask.nii.gz``."""

    def write(folder: Path, stem: str, seed: int = 0, affine: np.ndarray | None = None) -> tuple[Path, Path]:
        image, label = head_and_lesion(seed=seed)
        return (
            write_nifti(folder / f"{stem}.nii.gz", image, affine),
            write_nifti(folder / f"{stem}_mask.nii.gz", label, affine),
        )

    return write


@pytest.fixture
def data_config() -> DataConfig:
    """1 mm isotropic output, 1 mm crop margin, z-score normalisation."""
    return DataConfig(spacing=(1.0, 1.0, 1.0), crop_margin_mm=1.0)


@pytest.fixture
def bids_root(tmp_path: Path, write_nifti: NiftiWriter) -> Path:
    """Two sites: A has sub-01 (FLAIR + T2w, and an ignored T1w) and sub-02 (FLAIR, in ses-01);
    B has sub-03 (T2w, uncompressed .nii) and sub-04 (T2w)."""
    root = tmp_path / "bids"
    images = {
        "sub-01/anat/sub-01_FLAIR": ".nii.gz",
        "sub-01/anat/sub-01_T2w": ".nii.gz",
        "sub-02/ses-01/anat/sub-02_ses-01_FLAIR": ".nii.gz",
        "sub-03/anat/sub-03_T2w": ".nii",
        "sub-04/anat/sub-04_acq-3d_T2w": ".nii.gz",
    }
    for seed, (relative, extension) in enumerate(images.items()):
        image, label = head_and_lesion(seed=seed)
        write_nifti(root / f"{relative}{extension}", image)
        write_nifti(root / "derivatives" / "labels" / f"{relative}_mask{extension}", label)
    write_nifti(root / "sub-01" / "anat" / "sub-01_T1w.nii.gz", head_and_lesion()[0])  # not a lesion contrast
    (root / "participants.tsv").write_text(
        "participant_id\tage\tsite\nsub-01\t30\tA\nsub-02\t41\tA\nsub-03\t52\tB\nsub-04\t29\tB\n"
    )
    return root


@pytest.fixture
def write_csv() -> Callable[[Path, list[dict[str, str]]], Path]:
    """Write a CSV manifest with the five required columns."""

    def write(path: Path, rows: list[dict[str, str]]) -> Path:
        with open(path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["subject", "center", "contrast", "image", "label"])
            writer.writeheader()
            writer.writerows(rows)
        return path

    return write


@pytest.fixture
def manifest_csv(tmp_path: Path, write_pair: PairWriter, write_csv: Callable[..., Path]) -> Path:
    """Four subjects in two centers (relative paths); s1 has FLAIR and T2w."""
    folder = tmp_path / "raw"
    rows = []
    for seed, (subject, center, contrast) in enumerate(
        [
            ("s1", "X", "FLAIR"),
            ("s1", "X", "T2w"),
            ("s2", "X", "FLAIR"),
            ("s3", "Y", "FLAIR"),
            ("s4", "Y", "FLAIR"),
        ]
    ):
        write_pair(folder / "images", f"{subject}_{contrast}", seed=seed)
        rows.append(
            {
                "subject": subject,
                "center": center,
                "contrast": contrast,
                "image": f"images/{subject}_{contrast}.nii.gz",
                "label": f"images/{subject}_{contrast}_mask.nii.gz",
            }
        )
    return write_csv(folder / "cases.csv", rows)
