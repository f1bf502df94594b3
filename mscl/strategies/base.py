"""The strategy contract: which stages run, what data each sees, and whether it starts fresh.

One stage loop (:mod:`mscl.protocol.loop`) serves every strategy. A strategy never trains or evaluates; it
plans stages and, for replay, supplies extra cases and updates its memory after each stage.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np

from mscl.config import ExperimentConfig

RMatrixKind = Literal["continual", "single", "joint", "cumulative"]


@dataclass(frozen=True)
class StagePlan:
    """One training stage.

    Attributes:
        index: 0-based position in the study.
        center: the center this stage adds (its R row label); ``joint`` for the pooled stage.
        train_centers: centers whose training split this stage trains on.
        fresh: start from a newly initialised model instead of the previous stage's weights.
    """

    index: int
    center: str
    train_centers: tuple[str, ...]
    fresh: bool

    @property
    def name(self) -> str:
        """MLflow run name of the stage, e.g. ``stage1-BWH`` (1-based)."""
        return f"stage{self.index + 1}-{self.center}"


@dataclass
class ExtraCase:
    """A training case that does not come from the dataset's current split (e.g. replay memory)."""

    key: str
    image: np.ndarray
    label: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)


class Strategy:
    """Base strategy: sequential stages over ``order``, carrying weights on (sequential fine-tuning)."""

    name: ClassVar[str] = "finetune"
    kind: ClassVar[RMatrixKind] = "continual"

    def __init__(self, cfg: ExperimentConfig, seed: int) -> None:
        """Strategies without state ignore the configuration; replay opens its memory here."""

    def plan(self, order: Sequence[str]) -> list[StagePlan]:
        """The stages in training order."""
        return [StagePlan(i, center, (center,), fresh=i == 0) for i, center in enumerate(order)]

    def extra_cases(self, stage: StagePlan) -> list[ExtraCase]:
        """Cases trained on besides the stage's own centers (none by default)."""
        return []

    def after_stage(self, stage: StagePlan, train_cases: Sequence[ExtraCase]) -> dict[str, Any] | None:
        """Hook after a stage has trained and been scored; returns a manifest to log, if any."""
        return None

    def close(self) -> None:
        """Release resources (memory stores)."""
