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
from mscl.strategies.base import StagePlan


@dataclass(frozen=True)
class PartialStage:
    """A stage interrupted after ``state.epoch`` epochs."""

    index: int
    model: dict[str, Any]
    state: StageState


class StateStore:
    """The mid-stage resume files of one parent run."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def path(self, index: int) -> Path:
        """File of stage ``index`` (0-based)."""
        return self.folder / f"stage{index + 1}.pt"

    def save(self, index: int, model: torch.nn.Module, state: StageState) -> Path:
        """Write the resume point of a stage atomically."""
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.path(index)
        tmp = target.with_suffix(".pt.tmp")
        payload = {
            "model": model.state_dict(),
            "optimizer": state.optimizer,
            "scheduler": state.scheduler,
            "epoch": state.epoch,
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
        return PartialStage(index, payload["model"], state)

    def clear(self, index: int) -> None:
        """Drop a stage's resume point once the stage has finished (and the folder once it is empty)."""
        self.path(index).unlink(missing_ok=True)
        if self.folder.is_dir() and not any(self.folder.iterdir()):
            self.folder.rmdir()


class CheckpointObserver(StudyObserver):
    """Saves a resume point every ``every`` epochs; removes it when the stage finishes."""

    def __init__(self, store: StateStore, every: int) -> None:
        self.store, self.every = store, every

    def stage_state(self, stage: StagePlan, model: torch.nn.Module, state: StageState) -> None:
        if self.every and state.epoch % self.every == 0:
            self.store.save(stage.index, model, state)

    def stage_finished(self, outcome: Any, model: torch.nn.Module) -> None:
        self.store.clear(outcome.stage.index)
