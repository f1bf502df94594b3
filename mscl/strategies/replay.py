"""Experience replay: sequential fine-tuning plus a memory of up to ``quota`` cases of every earlier center.

Each stage trains on the current center's training split merged with every case in the memory
(L' = E_{D_k}[l] + E_M[l] over the pooled cases); after the stage the policy selects the center's cases to
keep. The memory lives in any registered backend, so it can persist between processes. A study starts by
clearing its store and refills it stage by stage; a resumed study refills it from its finished stages (the
selection is deterministic), so the store always matches the stages that MLflow records as finished.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import Field

from mscl.config import ExperimentConfig, StrategyOptions
from mscl.memory_backends.registry import MEMORY_BACKENDS
from mscl.strategies.base import ExtraCase, StageContext, StagePlan, Strategy
from mscl.strategies.regularisers import EwcSettings, LwfSettings, MasSettings
from mscl.strategies.replay_memory import CaseInfo, ReplayMemory, ReplayPolicy


class ReplayOptions(StrategyOptions):
    """The ``strategy:`` section of replay: regularisation terms it may carry besides its memory."""

    ewc: EwcSettings | None = Field(None, description="Add online EWC to replay (see strategies.md).")
    mas: MasSettings | None = Field(None, description="Add MAS to replay.")
    lwf: LwfSettings | None = Field(None, description="Add LwF distillation to replay.")


class Replay(Strategy):
    """Experiment C of the study, optionally with EWC, MAS or LwF terms (``strategy.ewc`` ...)."""

    name = "replay"
    options = ReplayOptions

    def __init__(self, cfg: ExperimentConfig, seed: int) -> None:
        super().__init__(cfg, seed)
        config = cfg.memory
        backend_cls = MEMORY_BACKENDS.get(config.backend)
        self._scratch: Path | None = None
        path: Path | None = None
        if getattr(backend_cls, "persistent", True):
            folder = config.path
            if folder is None:
                folder = self._scratch = Path(tempfile.mkdtemp(prefix="mscl-memory-"))
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"replay-seed{seed}{getattr(backend_cls, 'suffix', '')}"
        self.path = path
        self.memory = ReplayMemory(
            backend_cls(path, mode="a", compression=config.compression),
            ReplayPolicy.from_config(config, seed),
        )
        self.memory.clear()

    def extra_cases(self, stage: StagePlan) -> list[ExtraCase]:
        """Every case in the memory, checksums verified."""
        return [
            ExtraCase(f"memory:{meta.center}:{meta.subject}:{meta.contrast}", image, label, meta.model_dump())
            for image, label, meta in self.memory.load_all()
        ]

    def after_stage(self, context: StageContext) -> dict[str, Any]:
        """Select the stage's center's cases into the memory, update the terms; return the memory manifest."""
        self.restore_stage(context.stage, context.train_cases)
        super().after_stage(context)
        return {
            "store": str(self.path) if self.path else None,
            "after_stage": context.stage.index + 1,
            "samples": self.memory.manifest(),
        }

    def restore_stage(self, stage: StagePlan, train_cases: Sequence[ExtraCase]) -> None:
        """Select ``stage.center``'s cases into the memory (deterministic: resume rebuilds the same one)."""
        arrays = {case.key: (case.image, case.label) for case in train_cases}
        candidates = [
            CaseInfo(
                id=case.key,
                subject=case.meta["subject"],
                center=case.meta["center"],
                contrast=case.meta["contrast"],
                lesion_voxels=case.meta["lesion_voxels"],
                nbytes=case.image.nbytes + case.label.nbytes,
            )
            for case in train_cases
            if case.meta["center"] == stage.center
        ]
        self.memory.add_center(stage.center, candidates, arrays.__getitem__)

    def close(self) -> None:
        """Close the store; a scratch store (no ``memory.path``) is deleted."""
        self.memory.backend.close()
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
