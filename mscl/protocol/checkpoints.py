"""Mid-stage resume points: model, optimizer and scheduler state written atomically every few epochs.

A finished stage's weights live in MLflow (``checkpoint/model.pt`` of its stage run); what a stage killed
half-way needs lives on the training machine in ``<train.checkpoint_dir>/<parent run id>/stage<k>.pt``,
replaced atomically (write to a temporary file, then rename) so a kill never leaves a torn file.

A resume point carries its own sha256: the file is a header line ``MSCLRP1 <sha256 of the rest>`` followed
by the ``torch.save`` bytes, checked before anything is unpickled. Files and the folder are owner-only
(0o600, 0o700) whatever the umask. A resume point of a stage that MLflow records as finished (a kill after
the stage run ended, before the file was removed) is removed when the study resumes.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mscl.engine.trainer import StageState
from mscl.errors import ResumePointCorrupted
from mscl.permissions import make_folders
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


MAGIC = b"MSCLRP1 "
"""First bytes of a resume point: format 1, then the sha256 (hex) of the payload and a newline."""
PRIVATE_FILE, PRIVATE_DIR = 0o600, 0o700
_FOLDER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


class StateStore:
    """The mid-stage resume files of one parent run: ``<root>/<run id>/stage<k>.pt``."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        if not _FOLDER_NAME.fullmatch(self.folder.name):  # a run id: never a path of its own
            raise ResumePointCorrupted(f"{self.folder}: not a folder of resume points (bad run id)")

    def path(self, index: int) -> Path:
        """File of stage ``index`` (0-based)."""
        return self.folder / f"stage{index + 1}.pt"

    def save(
        self, index: int, model: torch.nn.Module, state: StageState, strategy_state: dict[str, Any]
    ) -> Path:
        """Write the resume point of a stage atomically, with its sha256 in its header."""
        make_folders(self.folder, PRIVATE_DIR)
        target = self.path(index)
        tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
        payload = {
            "model": model.state_dict(),
            "optimizer": state.optimizer,
            "scheduler": state.scheduler,
            "epoch": state.epoch,
            "strategy": strategy_state,
        }
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        data = buffer.getvalue()
        header = MAGIC + hashlib.sha256(data).hexdigest().encode() + b"\n"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(header + data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        return target

    def load(self, index: int) -> PartialStage | None:
        """The resume point of stage ``index``, if one was saved, after checking its sha256.

        Raises:
            ResumePointCorrupted: the file does not match the sha256 in its header, or cannot be read.
        """
        path = self.path(index)
        if not path.is_file():
            return None
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ResumePointCorrupted(f"{path}: cannot read the resume point ({exc.strerror})") from None
        fix = f"delete it to restart stage {index + 1} from its beginning"
        if raw.startswith(MAGIC):
            header, _, data = raw.partition(b"\n")
            if hashlib.sha256(data).hexdigest().encode() != header.removeprefix(MAGIC):
                raise ResumePointCorrupted(f"{path}: resume point does not match its sha256 (corrupt); {fix}")
        else:
            data = raw  # written before resume points carried a sha256: there is none to check
        try:
            payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
            state = StageState(payload["optimizer"], payload["scheduler"], int(payload["epoch"]))
            return PartialStage(index, payload["model"], state, payload.get("strategy", {}))
        except Exception as exc:  # torch raises RuntimeError, pickle and zip errors for a bad file
            raise ResumePointCorrupted(
                f"{path}: resume point cannot be read ({type(exc).__name__}); {fix}"
            ) from None

    def clear(self, index: int) -> None:
        """Drop a stage's resume point once the stage has finished (and the folder once it is empty)."""
        self.path(index).unlink(missing_ok=True)
        if self.folder.is_dir():
            for stale in self.folder.glob(f".{self.path(index).name}.tmp-*"):  # a save killed mid-write
                stale.unlink(missing_ok=True)
            if not any(self.folder.iterdir()):
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
