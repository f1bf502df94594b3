"""A tiny hand-made multi-center dataset for tests: bright (or dark) cubes in noise, three centers."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mscl.data.build import CaseJob, build_dataset
from mscl.data.manifest import PreprocessingRecord, SourceRecord
from mscl.data.writer import PreparedCase

SHAPE = (20, 20, 20)
CENTERS = {"Big": 4, "Mid": 3, "Small": 3}
"""Subjects per center; ``Small`` is a T2w center whose lesions are dark."""
MORE_CENTERS = {"Extra": 3}
"""Centers a dataset may hold besides :data:`CENTERS` (a hospital joining later: ``mscl extend``)."""


def make_blob_case(subject: str, center: str, contrast: str, seed: int, invert: bool) -> PreparedCase:
    """Noise with a bright (or, for ``invert``, dark) cube lesion at a seeded position."""
    rng = np.random.default_rng(seed)
    image = rng.normal(0.0, 0.3, SHAPE).astype(np.float32)
    label = np.zeros(SHAPE, dtype=np.float32)
    x, y, z = rng.integers(4, 12, size=3)
    label[x : x + 5, y : y + 5, z : z + 5] = 1.0
    image += (-2.0 if invert else 2.0) * label
    return PreparedCase(subject, center, contrast, image, label, (1.0, 1.0, 1.0))


def build_blob_dataset(
    out: Path, centers: Sequence[str] = tuple(CENTERS), spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
) -> Path:
    """Write the blob dataset to the dataset directory ``out``: by default :data:`CENTERS` (10 cases, a
    subject-level split); ``centers`` chooses among :data:`CENTERS` and :data:`MORE_CENTERS` (each center's
    cases and split the same in every dataset holding it); ``spacing`` is only recorded, as preprocessing."""
    known = CENTERS | MORE_CENTERS
    jobs = []
    for center in centers:
        c, n = list(known).index(center), known[center]
        contrast = "T2w" if center == "Small" else "FLAIR"
        for s in range(n):
            subject = f"{center}{s:02d}"
            kwargs = {
                "subject": subject,
                "center": center,
                "contrast": contrast,
                "seed": 100 * c + s,
                "invert": center == "Small",
            }
            jobs.append(CaseJob(subject, center, contrast, make_blob_case, kwargs))
    build_dataset(
        jobs,
        out=out,
        name="blobs",
        fmt="zarr",
        source=SourceRecord(kind="synthetic", generator="blobs"),
        preprocessing=PreprocessingRecord(spacing=spacing, crop="none", intensity_normalization="none"),
        test_fraction=0.34,
        split_seed=0,
        quiet=True,
    )
    return out
