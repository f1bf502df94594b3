"""Per-case evaluation: one prediction per case, every configured metric, centers' means."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from mscl.config import EvalConfig
from mscl.engine.evaluation import evaluate_centers, nan_mean


class _Positive(nn.Module):
    """Predicts lesion wherever the intensity is positive."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x > 0).float()


def test_every_metric_scores_every_case_by_center_and_id() -> None:
    image = np.random.default_rng(0).normal(size=(10, 9, 8)).astype(np.float32)
    half = (image > 0).astype(np.float32)
    half[:5] = 0
    spacing = (1.0, 1.0, 2.0)
    centers = {
        "A": iter(
            [("whole", image, (image > 0).astype(np.float32), spacing), ("half", image, half, spacing)]
        ),
        "B": iter([("empty", -abs(image), 0 * half, spacing)]),
    }
    cfg = EvalConfig(empty_policy="skip", metrics=["dice", "volume_diff_ml", "lesion_tpr"])
    evaluation = evaluate_centers(_Positive(), centers, cfg, (8, 8, 8), torch.device("cpu"))
    scores = evaluation.per_case
    assert list(scores) == ["dice", "volume_diff_ml", "lesion_tpr"]
    assert list(scores["dice"]["A"]) == ["whole", "half"]
    assert scores["dice"]["A"]["whole"] == 1.0
    positive = int((image > 0).sum())
    assert scores["dice"]["A"]["half"] == pytest.approx(2 * half.sum() / (half.sum() + positive))
    assert scores["volume_diff_ml"]["A"]["half"] == pytest.approx((positive - half.sum()) * 2.0 / 1000)
    assert math.isnan(scores["dice"]["B"]["empty"]) and math.isnan(scores["lesion_tpr"]["B"]["empty"])
    means = evaluation.means()
    assert means["dice"]["A"] == pytest.approx(np.mean(list(scores["dice"]["A"].values())))
    assert math.isnan(means["dice"]["B"])  # every case undefined: a missing score, not 0


def test_a_center_without_cases_gets_missing_scores() -> None:
    evaluation = evaluate_centers(_Positive(), {"A": []}, EvalConfig(), (8, 8, 8), torch.device("cpu"))
    assert all(math.isnan(evaluation.means()[m]["A"]) for m in EvalConfig().metrics)


def test_nan_mean_ignores_undefined_values() -> None:
    assert nan_mean([1.0, math.nan, 0.0]) == 0.5
    assert math.isnan(nan_mean([math.nan])) and math.isnan(nan_mean([]))
