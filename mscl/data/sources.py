"""Discovery of real cases: a BIDS tree or a CSV manifest, checked cheaply (headers only) up front.

Both sources give a sorted list of :class:`SourceCase`, one per (subject, contrast) image-label pair.
The naming rules are documented in docs/data.md. ``mscl predict`` discovers the same way with
``require_labels=False``: labels, centers and a CSV's contrast column become optional.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from mscl.config import DataConfig
from mscl.data.manifest import IDENTIFIER
from mscl.errors import DataError

BIDS_CONTRASTS: tuple[str, ...] = ("FLAIR", "T2w")
MANIFEST_COLUMNS: tuple[str, ...] = ("subject", "center", "contrast", "image", "label")
PREDICT_COLUMNS: tuple[str, ...] = ("subject", "image")
"""The columns a CSV must have for ``mscl predict``; the others may be missing or empty."""
UNKNOWN = "unknown"
"""The center or contrast of a case to predict whose source does not say."""
AFFINE_TOLERANCE = 1e-3
"""Largest absolute difference (mm) allowed between the affines of an image and its label."""
NIFTI_SUFFIXES: tuple[str, ...] = (".nii.gz", ".nii")


@dataclass(frozen=True, order=True)
class SourceCase:
    """One (subject, contrast) image-label pair found in a source; sorts by subject then contrast.

    ``label`` is ``None`` only for a case found with ``require_labels=False`` that has none.
    """

    subject: str
    contrast: str
    center: str
    image: Path
    label: Path | None


def discover(kind: str, path: Path, data: DataConfig, require_labels: bool = True) -> list[SourceCase]:
    """Find and header-check every case of a BIDS tree (``kind="bids"``) or CSV (``kind="manifest"``).

    Without ``require_labels`` a case may lack a label and a center (``mscl predict``).

    Raises:
        DataError: naming the file or field at fault, for any problem found without reading voxels.
    """
    cases = (
        discover_bids(path, data, require_labels)
        if kind == "bids"
        else discover_manifest(path, require_labels)
    )
    check_identifiers(cases, path)
    for case in cases:
        check_pair(case.image, case.label)
    return cases


def check_identifiers(cases: Iterable[SourceCase], path: Path) -> None:
    """Refuse a subject, center or contrast that is no identifier (they name stored arrays and files).

    Raises:
        DataError: naming the source and the value.
    """
    for case in cases:
        for field, value in (("subject", case.subject), ("center", case.center), ("contrast", case.contrast)):
            if not IDENTIFIER.fullmatch(value):
                raise DataError(f"{path}: {field} {value!r} may only hold letters, digits, '.', '_' and '-'")


def discover_bids(root: Path, data: DataConfig, require_labels: bool = True) -> list[SourceCase]:
    """Cases of a BIDS tree: ``sub-*/[ses-*/]anat/*_<FLAIR|T2w>.nii[.gz]`` with masks in derivatives.

    The mask of ``<stem>.nii[.gz]`` is ``derivatives/<labels_dir>/<same sub/ses/anat folders>/
    <stem><label_suffix>.nii[.gz]``; the center comes from ``participants.tsv`` column ``center_column``.
    A subject with several images of one contrast (sessions, runs, acquisitions) is refused. Without
    ``require_labels``, participants.tsv, centers and masks may be missing.

    Raises:
        DataError: for a missing folder, participants.tsv, center, mask, or an ambiguous subject.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: BIDS directory not found")
    tsv = root / "participants.tsv"
    centers = _participant_centers(tsv, data.center_column) if require_labels or tsv.is_file() else {}
    found: dict[tuple[str, str], Path] = {}
    for image in sorted(root.glob("sub-*/anat/*")) + sorted(root.glob("sub-*/ses-*/anat/*")):
        contrast = bids_contrast(image.name)
        if contrast is None:
            continue
        subject = image.relative_to(root).parts[0]
        previous = found.setdefault((subject, contrast), image)
        if previous != image:
            raise DataError(
                f"{root}: {subject} has several {contrast} images ({previous.name}, {image.name}); "
                "keep one per contrast or list the chosen ones in a CSV manifest (--manifest)"
            )
    cases = []
    for (subject, contrast), image in found.items():
        center = centers.get(subject, "") or ("" if require_labels else UNKNOWN)
        if not center:
            raise DataError(f"{tsv}: no {data.center_column!r} value for {subject}")
        label = _bids_label(root, image, data, require_labels)
        cases.append(SourceCase(subject, contrast, center, image, label))
    return sorted(cases)


def bids_contrast(name: str) -> str | None:
    """The contrast suffix of a NIfTI file name, or ``None`` when it is not a FLAIR/T2w image."""
    stem = nifti_stem(name)
    if stem is None or not stem.startswith("sub-"):
        return None
    suffix = stem.rsplit("_", 1)[-1]
    return suffix if suffix in BIDS_CONTRASTS else None


def _bids_label(root: Path, image: Path, data: DataConfig, required: bool) -> Path | None:
    folder = root / "derivatives" / data.labels_dir / image.parent.relative_to(root)
    stem = nifti_stem(image.name)
    own_suffix_first = sorted(NIFTI_SUFFIXES, key=lambda suffix: not image.name.endswith(suffix))
    candidates = [folder / f"{stem}{data.label_suffix}{suffix}" for suffix in own_suffix_first]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    if not required:
        return None
    raise DataError(f"{candidates[0]}: lesion mask of {image.name} not found")


def _participant_centers(tsv: Path, column: str) -> dict[str, str]:
    rows = _read_table(tsv, delimiter="\t", required=("participant_id", column))
    return {row["participant_id"].strip(): (row[column] or "").strip() for _, row in rows}


def discover_manifest(csv_path: Path, require_labels: bool = True) -> list[SourceCase]:
    """Cases listed in a CSV with columns subject, center, contrast, image, label.

    Relative image and label paths are resolved against the CSV's folder. Without ``require_labels`` only
    subject and image are needed: a missing or empty center or contrast is ``unknown``, label ``None``.

    Raises:
        DataError: naming the row and column of an empty or invalid field, a duplicate case, or a
            subject listed under two centers.
    """
    csv_path = Path(csv_path)
    base = csv_path.resolve().parent
    cases: dict[tuple[str, str], SourceCase] = {}
    center_of: dict[str, str] = {}
    required = MANIFEST_COLUMNS if require_labels else PREDICT_COLUMNS
    for line, row in _read_table(csv_path, delimiter=",", required=required):
        values = {column: (row.get(column) or "").strip() for column in MANIFEST_COLUMNS}
        for column in required:
            if not values[column]:
                raise DataError(f"{csv_path}: line {line}: empty {column!r}")
        for column in ("center", "contrast"):
            values[column] = values[column] or UNKNOWN
        subject, contrast = values["subject"], values["contrast"]
        if center_of.setdefault(subject, values["center"]) != values["center"]:
            raise DataError(f"{csv_path}: line {line}: subject {subject!r} listed under two centers")
        if (subject, contrast) in cases:
            raise DataError(f"{csv_path}: line {line}: duplicate {contrast} image for subject {subject!r}")
        label = base / values["label"] if values["label"] else None
        image = base / values["image"]
        cases[subject, contrast] = SourceCase(subject, contrast, values["center"], image, label)
    return sorted(cases.values())


def _read_table(path: Path, delimiter: str, required: Iterable[str]) -> list[tuple[int, dict[str, str]]]:
    """Rows of a delimited text file with their line numbers, after checking its header."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle, delimiter=delimiter)
            missing = [column for column in required if column not in (reader.fieldnames or [])]
            if missing:
                raise DataError(f"{path}: missing column(s) {', '.join(missing)}")
            return [(reader.line_num, row) for row in reader]
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None


def check_pair(image: Path, label: Path | None) -> None:
    """Check from the headers alone that an image and its label exist, are 3D, and share one grid
    (an image without label: that it exists and is 3D).

    Raises:
        DataError: naming the file that is missing, unreadable, not 3D, or off the image's grid.
    """
    image_header = read_header(image)
    if label is None:
        return
    label_header = read_header(label)
    if image_header.shape[:3] != label_header.shape[:3]:
        raise DataError(f"{label}: shape {label_header.shape} differs from its image's {image_header.shape}")
    if not np.allclose(image_header.affine, label_header.affine, rtol=0, atol=AFFINE_TOLERANCE):
        raise DataError(f"{label}: affine differs from its image's by more than {AFFINE_TOLERANCE} mm")


def read_header(path: Path) -> nib.Nifti1Image:
    """Open a NIfTI file without reading its voxels; its shape must be 3D (or 4D with one volume).

    Raises:
        DataError: when the file is missing, unreadable, not NIfTI, or not a single 3D volume.
    """
    if not Path(path).is_file():
        raise DataError(f"{path}: file not found")
    try:
        image = nib.load(path)
    except Exception as exc:  # nibabel raises many types for damaged files
        raise DataError(f"{path}: cannot read NIfTI header ({short_reason(exc)})") from None
    if not isinstance(image, nib.Nifti1Image):
        raise DataError(f"{path}: not a NIfTI image ({type(image).__name__})")
    if len(image.shape) != 3 and not (len(image.shape) == 4 and image.shape[3] == 1):
        raise DataError(f"{path}: expected a 3D volume, found shape {image.shape}")
    return image


def nifti_stem(name: str) -> str | None:
    for suffix in NIFTI_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return None


def short_reason(exc: BaseException) -> str:
    """A short one-line reason for an exception raised by a file reader."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
