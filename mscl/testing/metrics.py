"""The metric contract, run over every metric registered under ``mscl.metrics``.

A metric passes when it declares its attributes, scores within its bounds (or NaN) on soft volumes of any
lesion load, empty ones included, under every empty-case policy and anisotropic spacing; gives a perfect
prediction the best score of its bounds; is deterministic; and leaves its inputs untouched.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from mscl.config import EvalConfig
from mscl.metrics.base import Metric, ScoredCase
from mscl.metrics.registry import METRICS, build_metrics, score_case


def random_cases(cfg: EvalConfig) -> list[ScoredCase]:
    """Soft volumes of many lesion loads, empty predictions and labels among them, two spacings."""
    rng = np.random.default_rng(0)
    shape = (9, 10, 11)
    volumes = [rng.random(shape) ** p for p in (1, 4, 12)] + [np.zeros(shape)]
    return [
        ScoredCase(pred.astype(np.float32), label.astype(np.float32), spacing, cfg)
        for pred in volumes
        for label in volumes
        for spacing in [(1.0, 1.0, 1.0), (0.8, 1.2, 3.0)]
    ]


@pytest.fixture(params=METRICS.names())
def metric_name(request: pytest.FixtureRequest) -> str:
    """Every registered metric: a new one gets the whole contract suite."""
    return str(request.param)


def test_declares_its_attributes(metric_name: str) -> None:
    metric = METRICS.get(metric_name)
    assert issubclass(metric, Metric)
    assert metric.name == metric_name, "the class's name must be its entry-point name"
    assert metric.title and metric.empty_policy
    assert isinstance(metric.higher_is_better, bool)
    low, high = metric.bounds
    assert high is None or low < high


@pytest.mark.parametrize("policy", ["one", "zero", "skip"])
def test_scores_within_its_bounds(metric_name: str, policy: str) -> None:
    cfg = EvalConfig(empty_policy=policy, lesion_connectivity=6, lesion_min_volume_mm3=2.0)
    metrics = build_metrics(cfg, [metric_name])
    for case in random_cases(cfg):
        assert set(score_case(case, metrics)) == {metric_name}  # score_case raises on a score out of bounds


def test_a_perfect_prediction_scores_the_best_bound(metric_name: str) -> None:
    cfg = EvalConfig()
    metric = METRICS.get(metric_name)(cfg)
    low, high = metric.bounds
    best = high if metric.higher_is_better else low
    if best is None:
        pytest.skip(f"{metric_name}: no best bound (unbounded in its better direction)")
    label = (np.random.default_rng(1).random((12, 12, 12)) > 0.7).astype(np.float32)
    score = metric.score(ScoredCase(label.copy(), label, (1.0, 1.0, 1.0), cfg))
    assert math.isnan(score) or score == pytest.approx(best)


def test_is_deterministic_and_leaves_its_inputs_alone(metric_name: str) -> None:
    cfg = EvalConfig()
    for case in random_cases(cfg)[:6]:
        before = case.prediction.copy(), case.label.copy()
        first = METRICS.get(metric_name)(cfg).score(case)
        again = METRICS.get(metric_name)(cfg).score(ScoredCase(before[0], before[1], case.spacing, cfg))
        assert first == again or (math.isnan(first) and math.isnan(again))
        np.testing.assert_array_equal(case.prediction, before[0])
        np.testing.assert_array_equal(case.label, before[1])
