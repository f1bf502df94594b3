"""What a study produces: the outcome of every stage and the filled R matrices of one (strategy, seed)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mscl.protocol.kinds import SEQUENTIAL_KINDS, RMatrixKind
from mscl.protocol.metrics import ContinualSummary, summarize
from mscl.strategies.base import StagePlan

CenterScores = dict[str, dict[str, float]]
"""``{metric: {center: score}}``."""
CaseScores = dict[str, dict[str, dict[str, float]]]
"""``{metric: {center: {case id: score}}}``."""


@dataclass
class StageOutcome:
    """What one stage produced.

    Attributes:
        scores: every metric's mean over each center's test cases (the stage's R rows).
        per_case: the per-case scores behind them.
        strategy_state: the strategy's :meth:`~mscl.strategies.base.Strategy.state_dict` after the stage,
            saved with the stage checkpoint (empty for a stage read back from MLflow).
        timings: seconds per part of the stage: ``load``, ``cache``, ``train``, ``evaluate``, ``memory``.
    """

    stage: StagePlan
    scores: CenterScores
    per_case: CaseScores
    history: list[dict[str, float]]
    seconds: float
    memory_manifest: dict[str, Any] | None = None
    strategy_state: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class StudyResult:
    """A finished (strategy, seed) study.

    Attributes:
        metrics: the evaluation metrics, headline first (``eval.metrics``).
        baseline: the untrained model's scores, ``{metric: {center: score}}``.
    """

    strategy: str
    kind: RMatrixKind
    seed: int
    order: list[str]
    order_kind: str
    centers: list[str]
    metrics: list[str]
    baseline: CenterScores
    stages: list[StageOutcome] = field(default_factory=list)

    def matrix_of(self, metric: str) -> np.ndarray:
        """R of ``metric``: one row per stage, one column per center (canonical order)."""
        return np.array([[s.scores[metric][c] for c in self.centers] for s in self.stages], dtype=float)

    def baseline_of(self, metric: str) -> list[float]:
        """The untrained model's row of ``metric``, in column order."""
        return [self.baseline[metric][c] for c in self.centers]

    @property
    def matrix(self) -> np.ndarray:
        """R of the headline metric (Dice by default)."""
        return self.matrix_of(self.metrics[0])

    def summary(self, metric: str | None = None) -> ContinualSummary:
        """The continual metrics of ``metric`` (default the headline metric), sign-aware by its direction."""
        from mscl.metrics.registry import METRICS

        metric = metric or self.metrics[0]
        order = [s.stage.center for s in self.stages]
        sequential = self.kind in SEQUENTIAL_KINDS
        higher = METRICS.get(metric).higher_is_better
        return summarize(
            self.matrix_of(metric), order, self.centers, self.baseline_of(metric), sequential, higher
        )

    def summary_line(self) -> str:
        """``<metric>: acc +0.712, bwt +0.074, fwt +0.120`` of the headline metric (defined values only)."""
        values = self.summary().summaries()
        shown = ", ".join(f"{k} {values[k]:+.3f}" for k in ("acc", "bwt", "fwt") if not np.isnan(values[k]))
        return f"{self.metrics[0]}: {shown}"
