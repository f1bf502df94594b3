"""Binary Dice with its empty-case policies, and per-case evaluation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from mscl.config import EvalConfig
from mscl.engine.metrics import dice, evaluate_cases


def test_dice_binarises_both_arrays_at_the_threshold() -> None:
    pred = np.array([0.9, 0.6, 0.4, 0.0])
    label = np.array([1.0, 0.3, 0.7, 0.0])
    assert dice(pred, label) == pytest.approx(2 * 1 / (2 + 2))
    assert dice(pred, label, threshold=0.2) == pytest.approx(2 * 3 / (3 + 3))


def test_dice_accepts_tensors() -> None:
    assert dice(torch.ones(2, 2, 2), torch.ones(2, 2, 2)) == 1.0


@pytest.mark.parametrize(("policy", "expected"), [("one", 1.0), ("zero", 0.0)])
def test_both_empty_follows_the_policy(policy: str, expected: float) -> None:
    assert dice(np.zeros(5), np.zeros(5), empty_policy=policy) == expected


def test_skip_policy_gives_nan_ignored_by_nanmean() -> None:
    scores = [dice(np.zeros(5), np.zeros(5), empty_policy="skip"), dice(np.ones(5), np.ones(5))]
    assert math.isnan(scores[0])
    assert np.nanmean(scores) == 1.0


@pytest.mark.parametrize("policy", ["one", "zero", "skip"])
def test_one_sided_emptiness_scores_zero(policy: str) -> None:
    assert dice(np.zeros(5), np.ones(5), empty_policy=policy) == 0.0
    assert dice(np.ones(5), np.zeros(5), empty_policy=policy) == 0.0


class _Positive(nn.Module):
    """Predicts lesion wherever the intensity is positive."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x > 0).float()


def test_evaluate_cases_scores_every_case_by_id() -> None:
    image = np.random.default_rng(0).normal(size=(10, 9, 8)).astype(np.float32)
    half = (image > 0).astype(np.float32)
    half[:5] = 0
    cases = [
        ("whole", image, (image > 0).astype(np.float32)),
        ("half", image, half),
        ("empty", -abs(image), 0 * half),
    ]
    scores = evaluate_cases(
        _Positive(), iter(cases), EvalConfig(empty_policy="skip"), (8, 8, 8), torch.device("cpu")
    )
    assert list(scores) == ["whole", "half", "empty"]
    assert scores["whole"] == 1.0
    assert scores["half"] == pytest.approx(2 * half.sum() / (half.sum() + (image > 0).sum()))
    assert math.isnan(scores["empty"])
