"""The metric registry: the built-ins are registered, build in order, and out-of-bounds scores are refused."""

from __future__ import annotations

import pytest

from mscl.config import DEFAULT_METRICS, EvalConfig
from mscl.metrics.base import Metric, ScoredCase
from mscl.metrics.registry import METRICS, build_metrics, score_case
from mscl.testing.metrics import random_cases


def test_the_built_in_metrics_are_registered() -> None:
    assert set(DEFAULT_METRICS) <= set(METRICS.names())
    assert [m.name for m in build_metrics(EvalConfig())] == list(DEFAULT_METRICS)


def test_an_unknown_metric_in_the_config_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown metric 'hausdorff'; known: dice, lesion_f1"):
        EvalConfig(metrics=["dice", "hausdorff"])
    with pytest.raises(ValueError, match="metrics repeat dice"):
        EvalConfig(metrics=["dice", "dice"])


class _Broken(Metric):
    name = "broken"
    title = "broken"
    empty_policy = "never empty"

    def score(self, case: ScoredCase) -> float:
        return 1.5


def test_score_case_rejects_an_out_of_bounds_score() -> None:
    cfg = EvalConfig()
    case = random_cases(cfg)[0]
    with pytest.raises(ValueError, match=r"'broken' scored 1\.5 outside its bounds"):
        score_case(case, [_Broken(cfg)])
