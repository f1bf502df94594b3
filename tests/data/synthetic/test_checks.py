"""The global-threshold check: Dice curves, fitting, and the domain shift of the tiny dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mscl.data.synthetic.checks import dice_curve, fit_threshold, mean_dice, threshold_check


def _direct_dice(image: np.ndarray, label: np.ndarray, t: float) -> float:
    pred, truth = image > t, label >= 0.5
    total = pred.sum() + truth.sum()
    return 1.0 if total == 0 else 2.0 * (pred & truth).sum() / total


def test_dice_curve_matches_a_direct_computation() -> None:
    rng = np.random.default_rng(0)
    image = rng.normal(size=(6, 7, 5)).astype(np.float16)
    label = rng.random((6, 7, 5))
    thresholds = np.array([-3.0, -0.5, 0.0, 0.25, 1.0, 9.0])
    expected = [_direct_dice(image.astype(np.float32), label, t) for t in thresholds]
    np.testing.assert_allclose(dice_curve(image, label, thresholds), expected)


def test_fit_threshold_separates_bright_lesions() -> None:
    image = np.zeros((4, 4, 4), np.float32)
    label = np.zeros_like(image)
    image[:2], label[:2] = 3.0, 1.0
    image[2] = 1.0  # bright but not lesion
    threshold, dice = fit_threshold([(image, label)])
    assert 1.0 <= threshold < 3.0 and dice == pytest.approx(1.0)
    assert mean_dice([(image, label)], 0.5) == pytest.approx(2 * 32 / (48 + 32))


def test_a_global_threshold_works_on_flair_and_fails_on_milan_t2w(tiny_dataset: Path) -> None:
    check = threshold_check(tiny_dataset)
    assert check.flair_test_dice >= 0.6
    assert check.t2w_dice["Milan"] <= 0.3
    assert check.flair_train_dice >= 0.6
