"""What ``mscl predict`` segments: one NIfTI file, a folder of them, a CSV manifest or a BIDS tree.

CSV manifests and BIDS trees are discovered as ``mscl prepare`` discovers them
(:mod:`mscl.data.sources`), with labels optional. Each scan gets the path prefix of its outputs: in a
BIDS-derivatives layout for BIDS input, flat otherwise. Headers are not read here: a damaged scan fails on
its own, later, and the others are still segmented.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mscl.config import DataConfig
from mscl.data.sources import (
    NIFTI_SUFFIXES,
    UNKNOWN,
    SourceCase,
    bids_contrast,
    check_identifiers,
    discover_bids,
    discover_manifest,
    nifti_stem,
)
from mscl.errors import DataError

DERIVATIVES = Path("derivatives") / "mscl"
"""Where the outputs of a BIDS input go, inside ``--out``."""


@dataclass(frozen=True)
class Scan:
    """One scan to segment and where its outputs go (``<prefix>_desc-lesion_mask.nii.gz``, ...)."""

    case: SourceCase
    prefix: Path


@dataclass(frozen=True)
class Inputs:
    """The scans of an input path; ``bids`` when it is a BIDS tree."""

    scans: list[Scan]
    bids: bool


def find_inputs(path: Path, data: DataConfig) -> Inputs:
    """The scans of ``path``: a NIfTI file, a CSV manifest, a BIDS tree (``participants.tsv`` or ``sub-*``
    folders) or a folder of NIfTI files (``<stem><label_suffix>.nii[.gz]`` beside a scan is its label).

    Raises:
        DataError: the path is missing or none of these, holds no scan, or names a case twice.
    """
    path = Path(path)
    if path.is_dir() and ((path / "participants.tsv").is_file() or any(path.glob("sub-*/"))):
        cases = discover_bids(path, data, require_labels=False)
        check_identifiers(cases, path)
        scans = [Scan(c, DERIVATIVES / c.image.parent.relative_to(path) / _stem(c.image)) for c in cases]
        return Inputs(_non_empty(scans, path), bids=True)
    if path.is_dir():
        cases = _folder_cases(path, data)
    elif path.is_file() and path.suffix.lower() == ".csv":
        cases = discover_manifest(path, require_labels=False)
        check_identifiers(cases, path)
        return Inputs(_non_empty([Scan(c, Path(f"{c.subject}_{c.contrast}")) for c in cases], path), False)
    elif path.is_file() and nifti_stem(path.name) is not None:
        cases = [_file_case(path, data)]
    elif path.exists():
        raise DataError(f"{path}: not a NIfTI file (.nii, .nii.gz), a CSV manifest or a folder")
    else:
        raise DataError(f"{path}: input not found")
    return Inputs(_non_empty([Scan(c, Path(_stem(c.image))) for c in cases], path), bids=False)


def _folder_cases(folder: Path, data: DataConfig) -> list[SourceCase]:
    files = sorted(p for p in folder.iterdir() if p.is_file() and nifti_stem(p.name) is not None)
    stems = [_stem(p) for p in files]
    labels = {
        s for s in stems if s.endswith(data.label_suffix) and s.removesuffix(data.label_suffix) in stems
    }
    cases, seen = [], set()
    for image, stem in zip(files, stems, strict=True):
        if stem in labels:
            continue
        if stem in seen:
            raise DataError(f"{folder}: two scans named {stem} (.nii and .nii.gz); keep one")
        seen.add(stem)
        cases.append(_file_case(image, data))
    return cases


def _file_case(image: Path, data: DataConfig) -> SourceCase:
    """A lone scan: subject and contrast from a BIDS-like name (``sub-01_FLAIR``), else the file's stem
    and ``unknown``; its label ``<stem><label_suffix>`` beside it, when there is one."""
    stem = _stem(image)
    contrast = bids_contrast(image.name)
    subject = stem.removesuffix(f"_{contrast}") if contrast else stem
    labels = [image.parent / f"{stem}{data.label_suffix}{suffix}" for suffix in NIFTI_SUFFIXES]
    label = next((p for p in labels if p.is_file()), None)
    return SourceCase(subject, contrast or UNKNOWN, UNKNOWN, image, label)


def _stem(image: Path) -> str:
    stem = nifti_stem(image.name)
    assert stem is not None, image
    return stem


def _non_empty(scans: list[Scan], path: Path) -> list[Scan]:
    if not scans:
        raise DataError(f"{path}: no NIfTI scan found")
    return scans
