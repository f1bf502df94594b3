"""Subject-level splits: seeded, independent of listing order, floor rule of PROTOCOL.md."""

from __future__ import annotations

import pytest

from mscl.data import split
from mscl.data.split import assign_splits
from mscl.errors import DataError

PAPER_CENTERS = {
    "BWH": 80,
    "Karo": 51,
    "Milan": 47,
    "Rennes": 51,
    "NIH": 28,
    "Montp": 13,
    "UCSF": 12,
    "AMU": 8,
}
PAPER_TEST = {"BWH": 16, "Karo": 10, "Milan": 9, "Rennes": 10, "NIH": 5, "Montp": 2, "UCSF": 2, "AMU": 1}


def paper_subjects() -> dict[str, list[str]]:
    return {center: [f"{center}-{i:03d}" for i in range(n)] for center, n in PAPER_CENTERS.items()}


def test_floor_rule_gives_the_paper_test_counts() -> None:
    splits = assign_splits(paper_subjects(), 0.2, seed=0)
    for center, subjects in paper_subjects().items():
        assert sum(splits[s] == "test" for s in subjects) == PAPER_TEST[center], center


@pytest.mark.parametrize(
    ("n", "fraction", "expected"),
    [(2, 0.2, 1), (3, 0.9, 2), (10, 0.5, 5), (100, 0.29, 29), (90, 0.7, 63)],
)
def test_n_test_subjects_bounds_and_float_products(n: int, fraction: float, expected: int) -> None:
    assert split.n_test_subjects(n, fraction) == expected


def test_same_seed_same_split_whatever_the_listing_order() -> None:
    subjects = paper_subjects()
    shuffled = {center: list(reversed(ids)) + ids[:3] for center, ids in reversed(subjects.items())}
    assert assign_splits(subjects, 0.2, seed=3) == assign_splits(shuffled, 0.2, seed=3)
    assert assign_splits(subjects, 0.2, seed=3) != assign_splits(subjects, 0.2, seed=4)


def test_every_subject_on_exactly_one_side() -> None:
    splits = assign_splits(paper_subjects(), 0.2, seed=1)
    everyone = {s for ids in paper_subjects().values() for s in ids}
    assert set(splits) == everyone
    assert set(splits.values()) == {"train", "test"}


def test_single_subject_center_is_refused() -> None:
    with pytest.raises(DataError, match="center 'AMU' has 1 subject"):
        assign_splits({"BWH": ["a", "b"], "AMU": ["c"]}, 0.2, seed=0)
