"""Continual-learning metrics over an R matrix.

``R`` has one row per training stage (in training order) and one column per center (canonical order).
``R[i, j]`` is the test score of one metric on center ``j`` after stage ``i``; ``order[i]`` is the center
trained at stage ``i``; ``baseline[j]`` is the untrained model's score on center ``j``. With ``K`` stages
and ``s(c)`` the stage at which center ``c`` was trained (0-based below, 1-based in PROTOCOL.md):

- BWT = 1/(K-1) * sum_{i<K-1} (R[K-1, c_i] - R[i, c_i])            (mean over the first K-1 stages)
- per-center BWT(c) = R[K-1, c] - R[s(c), c]                          (0 for the last center)
- ACC = mean_j R[K-1, j]                                              (final row, all centers)
- FWT = 1/(K-1) * sum_{i>=1} (R[i-1, c_i] - baseline[c_i])            (zero-shot gain before training on c_i)
- forgetting = 1/(K-1) * sum_{i<K-1} (max_{s(c_i)<=l<K-1} R[l, c_i] - R[K-1, c_i])
- zero-shot mean after stage i = mean_j R[i, j]                       (seen and unseen centers alike)

NaN entries (a center whose every test case was skipped, or that was not available when an extended
study scored a stage) are ignored by the means; a summary with no defined value is NaN.

For a metric where lower is better (lesion FDR, volume difference), :func:`summarize` computes BWT, FWT and
forgetting on ``-R``, so that for every metric a positive BWT or FWT means better and a positive forgetting
means worse; ACC and the zero-shot means stay in the metric's own units.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


def _mean(values: Sequence[float] | np.ndarray) -> float:
    """Mean of the defined (non-NaN) values; NaN when there is none (without NumPy's warning)."""
    array = np.asarray(values, dtype=float)
    defined = array[~np.isnan(array)]
    return float(defined.mean()) if defined.size else float("nan")


def _max(values: np.ndarray) -> float:
    """Largest defined value; NaN when there is none."""
    defined = values[~np.isnan(values)]
    return float(defined.max()) if defined.size else float("nan")


def _stage_columns(order: Sequence[str], centers: Sequence[str]) -> list[int]:
    missing = [c for c in order if c not in centers]
    if missing:
        raise ValueError(f"order names centers missing from the columns: {missing}")
    return [list(centers).index(c) for c in order]


def _check(r: np.ndarray, order: Sequence[str]) -> np.ndarray:
    r = np.asarray(r, dtype=float)
    if r.ndim != 2 or r.shape[0] != len(order):
        raise ValueError(f"R must have one row per stage: shape {r.shape}, {len(order)} stages")
    return r


def per_center_bwt(r: np.ndarray, order: Sequence[str], centers: Sequence[str]) -> dict[str, float]:
    """``R[K-1, c] - R[s(c), c]`` for every trained center ``c``."""
    r = _check(r, order)
    cols = _stage_columns(order, centers)
    return {
        center: float(r[-1, col] - r[i, col]) for i, (center, col) in enumerate(zip(order, cols, strict=True))
    }


def bwt(r: np.ndarray, order: Sequence[str], centers: Sequence[str]) -> float:
    """Backward transfer: mean per-center BWT over the first K-1 stages (NaN when K < 2)."""
    values = list(per_center_bwt(r, order, centers).values())[:-1]
    return _mean(values)


def acc(r: np.ndarray) -> float:
    """Average accuracy: mean of the final row over all centers."""
    return _mean(np.asarray(r, dtype=float)[-1])


def fwt(
    r: np.ndarray, order: Sequence[str], centers: Sequence[str], baseline: Sequence[float] | np.ndarray
) -> float:
    """Forward transfer against the untrained baseline (NaN when K < 2)."""
    r = _check(r, order)
    cols = _stage_columns(order, centers)
    base = np.asarray(baseline, dtype=float)
    values = [r[i - 1, cols[i]] - base[cols[i]] for i in range(1, len(order))]
    return _mean(values)


def forgetting(r: np.ndarray, order: Sequence[str], centers: Sequence[str]) -> float:
    """Mean drop from the best earlier score to the final score, over the first K-1 centers."""
    r = _check(r, order)
    cols = _stage_columns(order, centers)
    values = [_max(r[i:-1, col]) - r[-1, col] for i, col in enumerate(cols[:-1])]
    return _mean(values)


def zero_shot_means(r: np.ndarray) -> list[float]:
    """Mean of every row: the zero-shot test score after each stage over all centers."""
    return [_mean(row) for row in np.asarray(r, dtype=float)]


SUMMARIES = ("acc", "bwt", "fwt", "forgetting")
"""The scalar continual metrics of a study, by name (see :meth:`ContinualSummary.summaries`)."""


@dataclass(frozen=True)
class ContinualSummary:
    """Every continual metric of one R matrix; the BWT family is NaN / empty for non-sequential kinds."""

    acc: float
    bwt: float = float("nan")
    fwt: float = float("nan")
    forgetting: float = float("nan")
    per_center_bwt: dict[str, float] = field(default_factory=dict)
    zero_shot: list[float] = field(default_factory=list)

    def summaries(self) -> dict[str, float]:
        """``acc``, ``bwt``, ``fwt`` and ``forgetting`` by name (:data:`SUMMARIES`)."""
        return {name: getattr(self, name) for name in SUMMARIES}


def summarize(
    r: np.ndarray,
    order: Sequence[str],
    centers: Sequence[str],
    baseline: Sequence[float] | np.ndarray | None,
    sequential: bool,
    higher_is_better: bool = True,
) -> ContinualSummary:
    """The continual metrics of one study's R matrix of one metric.

    Args:
        r: rows = stages in training order, columns = ``centers``.
        order: the center trained at each stage.
        centers: column names.
        baseline: the untrained model's row (FWT is NaN without it).
        sequential: a stage sequence over the centers (continual, cumulative); BWT, FWT and forgetting
            apply only then and only with two stages or more.
        higher_is_better: the metric's direction; BWT, FWT and forgetting are sign-aware (see above).
    """
    r = np.asarray(r, dtype=float)
    zero_shot = zero_shot_means(r)
    if not sequential or len(order) < 2:
        return ContinualSummary(acc(r), zero_shot=zero_shot)
    sign = 1.0 if higher_is_better else -1.0
    signed = sign * r
    signed_base = None if baseline is None else sign * np.asarray(baseline, dtype=float)
    return ContinualSummary(
        acc=acc(r),
        bwt=bwt(signed, order, centers),
        fwt=fwt(signed, order, centers, signed_base) if signed_base is not None else float("nan"),
        forgetting=forgetting(signed, order, centers),
        per_center_bwt=per_center_bwt(signed, order, centers),
        zero_shot=zero_shot,
    )
