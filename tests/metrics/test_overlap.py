"""Dice and nDSC against hand-worked numbers, and Dice against MONAI's."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mscl.config import EvalConfig
from mscl.metrics.base import ScoredCase
from mscl.metrics.overlap import Dice, NormalisedDice

SHAPE = (10, 10, 10)  # N = 1000 voxels


def case(pred: np.ndarray, label: np.ndarray, cfg: EvalConfig) -> ScoredCase:
    return ScoredCase(pred.astype(np.float32), label.astype(np.float32), (1.0, 1.0, 1.0), cfg)


@pytest.fixture
def ten_twelve_eight() -> tuple[np.ndarray, np.ndarray]:
    """|T| = 10, |P| = 12, TP = 8, so FP = 4 and FN = 2."""
    label = np.zeros(SHAPE, bool)
    label[0, 0, :10] = True
    pred = np.zeros(SHAPE, bool)
    pred[0, 0, :8] = True
    pred[5, 5, :4] = True
    return pred, label


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("threshold", [0.3, 0.5])
def test_dice_equals_monai_compute_dice(seed: int, threshold: float) -> None:
    from monai.metrics import compute_dice

    rng = np.random.default_rng(seed)
    cfg = EvalConfig(threshold=threshold)
    for pred, label in [
        (rng.random((7, 8, 9)), rng.random((7, 8, 9)) ** 3),
        (rng.random((7, 8, 9)) * 0.8, (rng.random((7, 8, 9)) > 0.95).astype(float)),
    ]:
        pred, label = pred.astype(np.float32), label.astype(np.float32)
        ours = Dice(cfg).score(ScoredCase(pred, label, (1.0, 1.0, 1.0), cfg))
        binary = [torch.as_tensor(a >= threshold, dtype=torch.float32)[None, None] for a in (pred, label)]
        theirs = float(compute_dice(*binary, include_background=True))
        assert ours == pytest.approx(theirs, rel=1e-6)  # MONAI counts in float32


@pytest.mark.parametrize(("policy", "expected"), [("one", 1.0), ("zero", 0.0), ("skip", math.nan)])
def test_dice_of_two_empty_masks_follows_the_policy(policy: str, expected: float) -> None:
    cfg = EvalConfig(empty_policy=policy)
    empty = np.zeros(SHAPE)
    score = Dice(cfg).score(case(empty, empty, cfg))
    assert score == expected or (math.isnan(score) and math.isnan(expected))
    assert Dice(cfg).score(case(empty, np.ones(SHAPE), cfg)) == 0.0
    assert Dice(cfg).score(case(np.ones(SHAPE), empty, cfg)) == 0.0


def test_dice_by_hand(ten_twelve_eight: tuple[np.ndarray, np.ndarray]) -> None:
    pred, label = ten_twelve_eight
    # 2 * 8 / (12 + 10) = 16 / 22
    assert Dice(EvalConfig()).score(case(pred, label, EvalConfig())) == 16 / 22


def test_ndsc_by_hand(ten_twelve_eight: tuple[np.ndarray, np.ndarray]) -> None:
    pred, label = ten_twelve_eight
    cfg = EvalConfig(ndsc_reference_load=0.001)
    # k = (1 - 0.001) * 10 / (0.001 * (1000 - 10)) = 9.99 / 0.99 = 10.0909...
    # nDSC = 2 * 8 / (2 * 8 + 2 + 10.0909... * 4) = 16 / 58.3636... = 0.274143...
    assert NormalisedDice(cfg).score(case(pred, label, cfg)) == pytest.approx(16 / (18 + 4 * 9.99 / 0.99))
    assert NormalisedDice(cfg).score(case(pred, label, cfg)) == pytest.approx(0.2741433, abs=1e-6)


def test_ndsc_is_dice_at_the_reference_load(ten_twelve_eight: tuple[np.ndarray, np.ndarray]) -> None:
    pred, label = ten_twelve_eight
    cfg = EvalConfig(ndsc_reference_load=0.01)
    # load 10 / 1000 = r: k = 0.99 * 10 / (0.01 * 990) = 1, nDSC = 16 / (16 + 2 + 4) = Dice
    assert NormalisedDice(cfg).score(case(pred, label, cfg)) == pytest.approx(16 / 22)


def test_ndsc_weighs_false_positives_more_above_the_reference_load() -> None:
    label = np.zeros(SHAPE, bool)
    label[:2] = True  # load 200 / 1000 > r = 0.001
    pred = label.copy()
    pred[5, 0, 0] = True  # one false positive
    cfg = EvalConfig()
    # k = 0.999 * 200 / (0.001 * 800) = 249.75; nDSC = 400 / (400 + 249.75) < Dice = 400 / 401
    assert NormalisedDice(cfg).score(case(pred, label, cfg)) == pytest.approx(400 / 649.75)


@pytest.mark.parametrize("metric", [Dice, NormalisedDice])
def test_one_side_empty_scores_zero(metric: type[Dice]) -> None:
    blob = np.zeros(SHAPE, bool)
    blob[2:4, 2:4, 2:4] = True
    empty = np.zeros(SHAPE, bool)
    cfg = EvalConfig()
    assert metric(cfg).score(case(blob, empty, cfg)) == 0.0  # Shifts: empty label, k = 1, TP = 0
    assert metric(cfg).score(case(empty, blob, cfg)) == 0.0  # TP = 0


@pytest.mark.parametrize("metric", [Dice, NormalisedDice])
@pytest.mark.parametrize(("policy", "expected"), [("one", 1.0), ("zero", 0.0), ("skip", math.nan)])
def test_both_empty_follows_the_empty_policy(metric: type[Dice], policy: str, expected: float) -> None:
    empty = np.zeros(SHAPE, bool)
    cfg = EvalConfig(empty_policy=policy)
    assert metric(cfg).score(case(empty, empty, cfg)) == pytest.approx(expected, nan_ok=True)


def test_ndsc_of_a_label_filling_the_volume_is_its_dice() -> None:
    label = np.ones(SHAPE, bool)
    pred = np.zeros(SHAPE, bool)
    pred[:3] = True
    cfg = EvalConfig()
    # no background, so FP = 0 and k is not needed: 2 * 300 / (600 + 700) = Dice
    assert NormalisedDice(cfg).score(case(pred, label, cfg)) == pytest.approx(600 / 1300)
