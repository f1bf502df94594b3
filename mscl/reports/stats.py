"""Statistics over seeds: mean, sample standard deviation, 95 % t-interval, paired Wilcoxon test."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
MIN_PAIRED = 5  # the smallest number of matched seeds a paired test is run on


@dataclass(frozen=True)
class Stat:
    """Mean over seeds with its spread; ``std`` and the interval are NaN below two values."""

    mean: float
    std: float
    ci_low: float
    ci_high: float
    n: int

    @classmethod
    def of(cls, values: Iterable[float]) -> Stat:
        """Summarise the finite ``values`` (NaN ones are left out and not counted)."""
        x = np.array([v for v in values if not math.isnan(v)], dtype=float)
        nan = float("nan")
        if x.size == 0:
            return cls(nan, nan, nan, nan, 0)
        mean = float(x.mean())
        if x.size < 2:
            return cls(mean, nan, nan, nan, 1)
        std = float(x.std(ddof=1))
        half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, x.size - 1)) * std / math.sqrt(x.size)
        return cls(mean, std, mean - half, mean + half, int(x.size))


@dataclass(frozen=True)
class PairedTest:
    """Two-sided Wilcoxon signed-rank test of ``a - b`` over the seeds both strategies ran."""

    metric: str
    a: str
    b: str
    n: int
    mean_diff: float
    p_value: float


def paired_test(metric: str, a: str, b: str, xa: Mapping[int, float], xb: Mapping[int, float]) -> PairedTest:
    """Test ``a`` against ``b`` on the seeds both have a finite value for.

    ``p_value`` is NaN below :data:`MIN_PAIRED` matched seeds and 1 when every difference is zero.
    """
    seeds = sorted(s for s in set(xa) & set(xb) if not (math.isnan(xa[s]) or math.isnan(xb[s])))
    diff = np.array([xa[s] - xb[s] for s in seeds], dtype=float)
    mean_diff = float(diff.mean()) if diff.size else float("nan")
    if diff.size < MIN_PAIRED:
        p = float("nan")
    elif not np.any(diff):
        p = 1.0
    else:
        p = float(stats.wilcoxon(diff).pvalue)
    return PairedTest(metric, a, b, int(diff.size), mean_diff, p)
