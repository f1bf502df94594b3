"""Observers of the stage loop: the protocol, a composite, and a rich progress display."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from mscl.strategies.base import StagePlan

if TYPE_CHECKING:
    from mscl.protocol.loop import StageOutcome


class StudyObserver(Protocol):
    """Receives the loop's events (MLflow tracking implements it; tests may record them)."""

    def stage_started(self, stage: StagePlan) -> None: ...

    def epoch_finished(self, stage: StagePlan, epoch: int, metrics: dict[str, float]) -> None: ...

    def stage_finished(self, outcome: StageOutcome, model: torch.nn.Module) -> None: ...


class CompositeObserver:
    """Forwards every event to several observers, in order."""

    def __init__(self, observers: Sequence[StudyObserver]) -> None:
        self.observers = list(observers)

    def stage_started(self, stage: StagePlan) -> None:
        """Forward to every observer."""
        for observer in self.observers:
            observer.stage_started(stage)

    def epoch_finished(self, stage: StagePlan, epoch: int, metrics: dict[str, float]) -> None:
        """Forward to every observer."""
        for observer in self.observers:
            observer.epoch_finished(stage, epoch, metrics)

    def stage_finished(self, outcome: StageOutcome, model: torch.nn.Module) -> None:
        """Forward to every observer."""
        for observer in self.observers:
            observer.stage_finished(outcome, model)


class ProgressObserver:
    """A rich progress display: one bar over stages, one over the current stage's epochs."""

    def __init__(self, progress: Progress, n_stages: int, epochs: int, title: str) -> None:
        self.progress, self.epochs = progress, epochs
        self.stages = progress.add_task(title, total=n_stages)
        self.epoch_task = progress.add_task("epochs", total=epochs)

    def stage_started(self, stage: StagePlan) -> None:
        """Reset the epoch bar for the new stage."""
        self.progress.reset(self.epoch_task, total=self.epochs, description=f"  {stage.name}")

    def epoch_finished(self, stage: StagePlan, epoch: int, metrics: dict[str, float]) -> None:
        """Advance the epoch bar, showing the loss."""
        loss = metrics.get("loss")
        suffix = f" loss {loss:.3f}" if loss is not None else ""
        self.progress.update(self.epoch_task, advance=1, description=f"  {stage.name}{suffix}")

    def stage_finished(self, outcome: StageOutcome, model: torch.nn.Module) -> None:
        """Advance the stage bar."""
        self.progress.advance(self.stages)


def progress_display(quiet: bool) -> Progress:
    """The progress bar layout used by long commands."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        disable=quiet,
    )
