"""Observers of the stage loop: the no-op base, a composite, and a rich progress display."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from rich.progress import Progress

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
    """A rich progress display: one bar over stages, one over the current stage's epochs."""

    def __init__(self, progress: Progress, n_stages: int, epochs: int, title: str) -> None:
        self.progress, self.epochs = progress, epochs
        self.stages = progress.add_task(title, total=n_stages)
        self.epoch_task = progress.add_task("epochs", total=epochs)

    def stage_started(self, stage: StagePlan) -> None:
        self.progress.reset(self.epoch_task, total=self.epochs, description=f"  {stage.name}")

    def epoch_finished(self, stage: StagePlan, epoch: int, metrics: dict[str, float]) -> None:
        loss = metrics.get("loss")
        suffix = f" loss {loss:.3f}" if loss is not None else ""
        self.progress.update(self.epoch_task, completed=epoch + 1, description=f"  {stage.name}{suffix}")

    def stage_finished(self, outcome: StageOutcome, model: torch.nn.Module) -> None:
        self.progress.advance(self.stages)
