"""Counts in words."""

from __future__ import annotations

import pytest

from mscl.words import counted


@pytest.mark.parametrize(
    ("n", "noun", "expected"),
    [(1, "seed", "1 seed"), (3, "seed", "3 seeds"), (0, "case", "0 cases"), (1, "subject", "1 subject")],
)
def test_counted_pluralises_all_but_one(n: int, noun: str, expected: str) -> None:
    assert counted(n, noun) == expected


def test_an_irregular_plural_is_given() -> None:
    assert (counted(1, "study", "studies"), counted(2, "study", "studies")) == ("1 study", "2 studies")
