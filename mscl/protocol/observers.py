"""Observers of the stage loop: the no-op base, a composite, and the progress display."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import torch

from mscl.progress import ProgressDisplay
from mscl.protocol.results import StageOutcome
from mscl.strategies.base import StagePlan

if TYPE_CHECKING:
    from mscl.engine.trainer import StageState


class StudyObserver:
    """Receives the loop's events; every hook does nothing unless a subclass overrides it.

    MLflow tracking, mid-stage checkpoints and the progress display are observers; tests record events.
    """

    def stage_started(self, stage: StagePlan) -> None:
        """A stage is about to train."""

    def epoch_finished(self, stage: StagePlan, epoch: int, metrics: dict[str, float]) -> None:
        """An epoch ended (0-based ``epoch``) with its training metrics."""

    def stage_state(self, stage: StagePlan, model: torch.nn.Module, state: StageState) -> None:
        """After each epoch: everything a mid-stage resume from this point needs."""

    def stage_finished(self, outcome: StageOutcome, model: torch.nn.Module) -> None:
        """A stage trained and was scored; ``model`` holds the weights carried on."""


class CompositeObserver(StudyObserver):
    """Forwards every event to several observers, in order."""

    def __init__(self, observers: Sequence[StudyObserver]) -> None:
        self.observers = list(observers)

    def stage_started(self, stage: StagePlan) -> None:
        for observer in self.observers:
            observer.stage_started(stage)

    def epoch_finished(self, stage: StagePlan, epoch: int, metrics: dict[str, float]) -> None:
        for observer in self.observers:
            observer.epoch_finished(stage, epoch, metrics)

    def stage_state(self, stage: StagePlan, model: torch.nn.Module, state: StageState) -> None:
        for observer in self.observers:
            observer.stage_state(stage, model, state)

    def stage_finished(self, outcome: StageOutcome, model: torch.nn.Module) -> None:
        for observer in self.observers:
            observer.stage_finished(outcome, model)


class ProgressObserver(StudyObserver):
    """A study's progress: one task over its stages, one over the current stage's epochs.

    Shows what the loop already has: each epoch's training loss and, per finished stage, the mean
    ``metric`` (the headline one) over the test splits of the centers the stage trained on.
    """

    def __init__(
        self, display: ProgressDisplay, stages: Sequence[StagePlan], epochs: int, title: str, metric: str
    ) -> None:
        self.display, self.epochs, self.metric = display, epochs, metric
        self.positions = {stage.index: position for position, stage in enumerate(stages, 1)}
        self.stages = display.add_task(title, total=len(stages), unit="stage")
        self.epoch_task = display.add_task("epochs", total=epochs, unit="epoch")

    def stage_started(self, stage: StagePlan) -> None:
        name = f"stage {self.positions[stage.index]}/{len(self.positions)} {stage.center}"
        self.display.reset(self.epoch_task, name, total=self.epochs)

    def epoch_finished(self, stage: StagePlan, epoch: int, metrics: dict[str, float]) -> None:
        loss = metrics.get("loss")
        note = f"loss {loss:.3f}" if loss is not None else None
        self.display.advance(self.epoch_task, note, completed=epoch + 1)

    def stage_finished(self, outcome: StageOutcome, model: torch.nn.Module) -> None:
        stage = outcome.stage
        score = _mean_of(outcome.scores.get(self.metric, {}), stage.train_centers)
        note = f"{stage.center} test {self.metric} {score:.3f}"
        self.display.advance(self.stages, note, completed=self.positions[stage.index])


def _mean_of(scores: Mapping[str, float], centers: Sequence[str]) -> float:
    """The mean of the defined scores of ``centers`` (NaN when none is)."""
    values = [scores[c] for c in centers if c in scores and not math.isnan(scores[c])]
    return sum(values) / len(values) if values else math.nan
