"""Evidence of the synthetic domain shift: the best global intensity threshold for lesions.

A threshold ``t`` segments ``image > t``; it is scored by the Dice of that mask against ``label >= 0.5``,
averaged over cases (the protocol's per-subject mean). :func:`fit_threshold` picks the ``t`` with the best
mean Dice on some cases; :func:`threshold_check` fits it on the FLAIR centers' training cases of a dataset
directory and scores it on the FLAIR test cases and on every T2w center. On FLAIR a threshold works
(lesions are the brightest tissue); on T2w it fails, because CSF is brighter than lesions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mscl.data.dataset import PreparedDataset
from mscl.data.synthetic.acquisition import FLAIR, T2W

THRESHOLD_GRID = np.linspace(-2.0, 8.0, 201)
"""Candidate thresholds on z-scored intensities."""

Case = tuple[np.ndarray, np.ndarray]


def dice_curve(image: np.ndarray, label: np.ndarray, thresholds: np.ndarray = THRESHOLD_GRID) -> np.ndarray:
    """Dice of ``image > t`` against ``label >= 0.5`` for every ``t`` (1 where both are empty)."""
    values = image.astype(np.float32).ravel()
    lesion = label.ravel() >= 0.5
    inside = np.searchsorted(thresholds, values[lesion], side="left")
    outside = np.searchsorted(thresholds, values[~lesion], side="left")
    # a value v is above threshold t_k iff k < searchsorted(thresholds, v, "left")
    true_pos = _count_above(inside, len(thresholds))
    false_pos = _count_above(outside, len(thresholds))
    denominator = true_pos + false_pos + lesion.sum()
    return np.where(denominator > 0, 2.0 * true_pos / np.maximum(denominator, 1), 1.0)


def _count_above(positions: np.ndarray, n: int) -> np.ndarray:
    """For each threshold index k, how many positions exceed k."""
    hist = np.bincount(positions, minlength=n + 1)
    return hist[::-1].cumsum()[::-1][1:].astype(np.float64)


def fit_threshold(cases: Sequence[Case], thresholds: np.ndarray = THRESHOLD_GRID) -> tuple[float, float]:
    """The threshold with the best mean Dice over ``cases``, and that Dice."""
    mean = np.mean([dice_curve(image, label, thresholds) for image, label in cases], axis=0)
    best = int(np.argmax(mean))
    return float(thresholds[best]), float(mean[best])


def mean_dice(cases: Sequence[Case], threshold: float) -> float:
    """Mean Dice of ``image > threshold`` over ``cases``."""
    return float(np.mean([dice_curve(image, label, np.array([threshold]))[0] for image, label in cases]))


@dataclass
class ThresholdCheck:
    """The threshold fitted on FLAIR training cases and its Dice elsewhere."""

    threshold: float
    flair_train_dice: float
    flair_test_dice: float
    t2w_dice: dict[str, float] = field(default_factory=dict)
    """Mean Dice over all cases of each T2w-only center and over the T2w cases of mixed centers."""


def threshold_check(directory: Path) -> ThresholdCheck:
    """Fit the global threshold on the FLAIR training cases of a dataset directory and score it."""
    with PreparedDataset(directory) as dataset:
        manifest = dataset.manifest

        def load(contrast: str, split: str | None = None, center: str | None = None) -> list[Case]:
            records = manifest.cases_of(center=center, split=split)  # type: ignore[arg-type]
            return [dataset.load(r.id) for r in records if r.contrast == contrast]

        threshold, train_dice = fit_threshold(load(FLAIR, "train"))
        t2w = {
            center.name: mean_dice(load(T2W, center=center.name), threshold)
            for center in manifest.centers
            if T2W in center.contrasts
        }
        return ThresholdCheck(threshold, train_dice, mean_dice(load(FLAIR, "test"), threshold), t2w)
