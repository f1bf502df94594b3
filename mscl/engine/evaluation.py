"""Scoring a model on test cases: one sliding-window prediction per case, every configured metric on it."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from mscl.config import EvalConfig
from mscl.engine.device import Precision
from mscl.engine.inference import predict_volume
from mscl.metrics.base import Metric, ScoredCase
from mscl.metrics.registry import build_metrics, score_case

TestCase = tuple[str, np.ndarray, np.ndarray, Sequence[float]]
"""``(case_id, image, label, spacing)``."""
Scores = dict[str, dict[str, dict[str, float]]]
"""``{metric: {center: {case_id: score}}}``."""


def nan_mean(values: Iterable[float]) -> float:
    """Mean of the defined (non-NaN) values; NaN when there is none."""
    kept = [v for v in values if not math.isnan(v)]
    return float(np.mean(kept)) if kept else float("nan")


@dataclass
class Evaluation:
    """Per-case scores of every metric on every center's cases."""

    metrics: list[str]
    per_case: Scores = field(default_factory=dict)

    def open(self, center: str) -> None:
        """Register ``center`` (a center without cases gets missing scores)."""
        for metric in self.metrics:
            self.per_case.setdefault(metric, {}).setdefault(center, {})

    def add(self, center: str, case_id: str, scores: Mapping[str, float]) -> None:
        """Record one case's scores."""
        self.open(center)
        for metric in self.metrics:
            self.per_case[metric][center][case_id] = scores[metric]

    def means(self) -> dict[str, dict[str, float]]:
        """``{metric: {center: mean over the center's cases}}`` (NaN for a center with no defined score)."""
        return {
            metric: {center: nan_mean(cases.values()) for center, cases in centers.items()}
            for metric, centers in self.per_case.items()
        }


def evaluate_centers(
    model: nn.Module,
    centers: Mapping[str, Iterable[TestCase]],
    eval_cfg: EvalConfig,
    patch_size: Sequence[int],
    device: torch.device,
    precision: Precision = "auto",
    on_prediction: Callable[[str, np.ndarray], object] | None = None,
) -> Evaluation:
    """Every metric of ``eval.metrics`` on every case of every center, after sliding-window inference.

    Cases are consumed one at a time, so each center's cases may be a generator reading volumes lazily.
    ``on_prediction(case_id, soft_prediction)`` is called for each case, e.g. to save predictions.
    """
    metrics = build_metrics(eval_cfg)
    evaluation = Evaluation([m.name for m in metrics])
    for center, cases in centers.items():
        evaluation.open(center)
        for case_id, image, label, spacing in cases:
            prediction = predict_volume(
                model, image, patch_size, eval_cfg.overlap, eval_cfg.window_batch, device, precision
            )
            if on_prediction is not None:
                on_prediction(case_id, prediction)
            evaluation.add(center, case_id, score_prediction(prediction, label, spacing, eval_cfg, metrics))
    return evaluation


def score_prediction(
    prediction: np.ndarray,
    label: np.ndarray,
    spacing: Sequence[float],
    eval_cfg: EvalConfig,
    metrics: Sequence[Metric],
) -> dict[str, float]:
    """Every metric's score of one soft prediction against its label."""
    return score_case(ScoredCase(prediction, label, spacing, eval_cfg), metrics)
