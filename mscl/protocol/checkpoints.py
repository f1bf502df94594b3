"""Mid-stage resume points: model, optimizer and scheduler state written atomically every few epochs.

A finished stage's weights live in MLflow (``checkpoint/model.pt`` of its stage run); what a stage killed
half-way needs lives on the training machine in ``<train.checkpoint_dir>/<parent run id>/stage<k>.pt``,
replaced atomically (write to a temporary file, then rename) so a kill never leaves a torn file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mscl.engine.trainer import StageState
from mscl.protocol.observers import StudyObserver
from mscl.protocol.results import StageOutcome
from mscl.strategies.base import StagePlan, Strategy


@dataclass(frozen=True)
class PartialStage:
    """A stage interrupted after ``state.epoch`` epochs, with the strategy's state at that point."""

    index: int
    model: dict[str, Any]
    state: StageState
    strategy_state: dict[str, Any]


class StateStore:
    """The mid-stage resume files of one parent run."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def path(self, index: int) -> Path:
        """File of stage ``index`` (0-based)."""
        return self.folder / f"stage{index + 1}.pt"

    def save(
        self, index: int, model: torch.nn.Module, state: StageState, strategy_state: dict[str, Any]
    ) -> Path:
        """Write the resume point of a stage atomically."""
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.path(index)
        tmp = target.with_suffix(".pt.tmp")
        payload = {
            "model": model.state_dict(),
            "optimizer": state.optimizer,
            "scheduler": state.scheduler,
            "epoch": state.epoch,
            "strategy": strategy_state,
        }
        torch.save(payload, tmp)
        os.replace(tmp, target)
        return target

    def load(self, index: int) -> PartialStage | None:
        """The resume point of stage ``index``, if one was saved."""
        path = self.path(index)
        if not path.is_file():
            return None
        payload = torch.load(path, map_location="cpu", weights_only=True)
        state = StageState(payload["optimizer"], payload["scheduler"], int(payload["epoch"]))
        return PartialStage(index, payload["model"], state, payload.get("strategy", {}))

    def clear(self, index: int) -> None:
        """Drop a stage's resume point once the stage has finished (and the folder once it is empty)."""
        self.path(index).unlink(missing_ok=True)
        if self.folder.is_dir() and not any(self.folder.iterdir()):
            self.folder.rmdir()


class CheckpointObserver(StudyObserver):
    """Saves a resume point (with ``strategy``'s state) every ``every`` epochs; removes it when the stage
    finishes."""

    def __init__(self, store: StateStore, every: int, strategy: Strategy) -> None:
        self.store, self.every, self.strategy = store, every, strategy

    def stage_state(self, stage: StagePlan, model: torch.nn.Module, state: StageState) -> None:
        if self.every and state.epoch % self.every == 0:
            self.store.save(stage.index, model, state, self.strategy.state_dict())

    def stage_finished(self, outcome: StageOutcome, model: torch.nn.Module) -> None:
        self.store.clear(outcome.stage.index)
