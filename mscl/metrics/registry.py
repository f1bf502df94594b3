"""The metrics registered under the entry-point group ``mscl.metrics``, and evaluation's metric suite."""

from __future__ import annotations

from collections.abc import Sequence

from mscl.config import EvalConfig
from mscl.errors import ConfigError
from mscl.metrics.base import Metric, ScoredCase
from mscl.plugins import METRICS_GROUP, Registry

METRICS: Registry[type[Metric]] = Registry(METRICS_GROUP, "metric", ConfigError)


def build_metrics(cfg: EvalConfig, names: Sequence[str] | None = None) -> list[Metric]:
    """One instance of every metric named by ``eval.metrics`` (or ``names``), in that order."""
    return [METRICS.get(name)(cfg) for name in (cfg.metrics if names is None else names)]


def score_case(case: ScoredCase, metrics: Sequence[Metric]) -> dict[str, float]:
    """Every metric's score of one case, keyed by metric name.

    Raises:
        ValueError: a metric returned a score outside its declared bounds (a bug in that metric).
    """
    scores = {}
    for metric in metrics:
        value = float(metric.score(case))
        if not metric.within_bounds(value):
            raise ValueError(f"metric {metric.name!r} scored {value} outside its bounds {metric.bounds}")
        scores[metric.name] = value
    return scores
