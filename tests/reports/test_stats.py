"""Statistics over seeds: hand-computed means, spreads, intervals and paired tests."""

from __future__ import annotations

import math

import pytest

from mscl.reports.stats import Stat, paired_test

T_975_4 = 2.7764451051977934  # Student t, 97.5th percentile, 4 degrees of freedom


def test_stat_mean_std_and_t_interval() -> None:
    stat = Stat.of([1.0, 2.0, 3.0, 4.0, 5.0, float("nan")])
    half = T_975_4 * math.sqrt(2.5) / math.sqrt(5)
    assert (stat.n, stat.mean) == (5, 3.0)
    assert stat.std == pytest.approx(math.sqrt(2.5))
    assert (stat.ci_low, stat.ci_high) == (pytest.approx(3 - half), pytest.approx(3 + half))


def test_stat_of_one_or_no_value() -> None:
    one, none = Stat.of([0.4]), Stat.of([])
    assert (one.mean, one.n) == (0.4, 1) and math.isnan(one.std) and math.isnan(one.ci_high)
    assert none.n == 0 and math.isnan(none.mean)


def test_paired_test_matches_seeds_and_needs_five() -> None:
    a = {s: 0.5 + 0.01 * s for s in range(6)}
    b = {s: 0.4 for s in range(1, 8)}
    test = paired_test("acc", "replay", "finetune", a, b)
    assert test.n == 5  # seeds 1..5 only
    assert test.mean_diff == pytest.approx(0.13)
    assert test.p_value == pytest.approx(2 / 2**5)  # every difference positive: exact two-sided p
    few = paired_test("acc", "x", "y", {0: 0.1, 1: 0.2}, {0: 0.3, 1: 0.1})
    assert few.n == 2 and math.isnan(few.p_value)
    same = paired_test("bwt", "x", "y", a, a)
    assert same.p_value == 1.0 and same.mean_diff == 0.0
