"""Subject-level train/test splits, seeded and independent of file listing order.

Rule (documented in docs/data.md): per center, subjects are sorted by id and shuffled with a generator
seeded by ``(seed, sha256(center))``; the first ``n_test = max(1, floor(n * test_fraction))`` subjects go
to test, capped at ``n - 1`` so at least one subject trains. A center with a single subject cannot be
split and is refused. Every contrast of a subject lands on the same side.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping

import numpy as np

from mscl.errors import DataError

SPLIT_RULE = (
    "per center: sorted subject ids shuffled by a generator seeded with (seed, sha256(center)); "
    "n_test = min(n - 1, max(1, floor(n * test_fraction))); all contrasts of a subject on one side"
)


def n_test_subjects(n_subjects: int, test_fraction: float) -> int:
    """Number of test subjects for a center of ``n_subjects``.

    The product is rounded to 9 decimals before the floor so that, e.g., 100 * 0.29 gives 29, not 28.
    """
    return min(n_subjects - 1, max(1, math.floor(round(n_subjects * test_fraction, 9))))


def center_seed(seed: int, center: str) -> list[int]:
    """Seed material for one center: stable across machines and Python versions."""
    return [seed, int.from_bytes(hashlib.sha256(center.encode()).digest()[:8], "little")]


def assign_splits(
    subjects_by_center: Mapping[str, Iterable[str]], test_fraction: float, seed: int
) -> dict[str, str]:
    """Map every subject id to ``"train"`` or ``"test"``.

    Raises:
        DataError: when a center has a single subject.
    """
    splits: dict[str, str] = {}
    for center in sorted(subjects_by_center):
        subjects = sorted(set(subjects_by_center[center]))
        if len(subjects) < 2:
            raise DataError(
                f"center {center!r} has {len(subjects)} subject(s); a train/test split needs at least 2"
            )
        order = np.random.default_rng(center_seed(seed, center)).permutation(len(subjects))
        n_test = n_test_subjects(len(subjects), test_fraction)
        for rank, index in enumerate(order):
            splits[subjects[index]] = "test" if rank < n_test else "train"
    return splits
