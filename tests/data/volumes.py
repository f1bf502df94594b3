"""Tiny synthetic volumes, cases and dataset directories shared by the data tests (12x14x10 voxels)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mscl.data.build import CaseJob, build_dataset
from mscl.data.manifest import DatasetManifest, PreprocessingRecord, SourceRecord
from mscl.data.store import StoreFormat
from mscl.data.writer import PreparedCase

SHAPE = (12, 14, 10)


def head_and_lesion(shape: tuple[int, int, int] = SHAPE, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A noisy ellipsoidal 'head' on a zero background and a soft cubic lesion (0.4 rim, 1.0 core) inside."""
    rng = np.random.default_rng(seed)
    grid = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    inside = sum(axis**2 for axis in grid) < 0.6
    image = np.where(inside, 100 + 10 * rng.standard_normal(shape), 0).astype(np.float32)
    label = np.zeros(shape, np.float32)
    centre = [n // 2 for n in shape]
    label[tuple(slice(c - 2, c + 2) for c in centre)] = 0.4
    label[tuple(slice(c - 1, c + 1) for c in centre)] = 1.0
    return image, label


def tiny_case(subject: str, center: str, contrast: str = "FLAIR", seed: int = 0) -> PreparedCase:
    """A prepared case straight from :func:`head_and_lesion` (no preprocessing), 1 mm spacing."""
    image, label = head_and_lesion(seed=seed)
    return PreparedCase(subject, center, contrast, image / 100, label, (1.0, 1.0, 1.0))


def tiny_jobs(subjects: dict[str, int]) -> list[CaseJob]:
    """One FLAIR job per subject; ``subjects`` maps ``center`` to a subject count."""
    return [
        CaseJob(
            f"{center}{i}",
            center,
            "FLAIR",
            tiny_case,
            {"subject": f"{center}{i}", "center": center, "seed": i},
        )
        for center, count in subjects.items()
        for i in range(count)
    ]


def build_tiny(
    out: Path, fmt: StoreFormat = "zarr", jobs: Sequence[CaseJob] | None = None
) -> DatasetManifest:
    """A dataset directory of two centers with 2 and 3 subjects, built like any real dataset."""
    return build_dataset(
        tiny_jobs({"A": 2, "B": 3}) if jobs is None else jobs,
        out=out,
        name=out.name,
        fmt=fmt,
        source=SourceRecord(kind="synthetic", generator="tests"),
        preprocessing=PreprocessingRecord(spacing=(1, 1, 1), crop="none", intensity_normalization="none"),
        test_fraction=0.3,
        split_seed=0,
        quiet=True,
    )
