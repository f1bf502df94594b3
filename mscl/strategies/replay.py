"""Experience replay: sequential fine-tuning plus a memory of up to ``quota`` cases of every earlier center.

Each stage trains on the current center's training split merged with every case in the memory
(L' = E_{D_k}[l] + E_M[l] over the pooled cases); after the stage the policy selects the center's cases to
keep. The memory lives in any registered backend, so it can persist between processes. A study clears its
store when it fills its first stage and refills it stage by stage; a resumed study refills it from its
finished stages (the selection is deterministic), so the store always matches the stages that MLflow records
as finished. An extended study (``mscl extend``) instead takes over the store as written
(:meth:`Replay.adopt_stages`): the earlier centers' data is not read again.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import Field

from mscl.config import ExperimentConfig, StrategyOptions
from mscl.data.manifest import CaseRecord
from mscl.errors import ConfigError
from mscl.memory_backends.files import lock_path
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
        self._existed = path is not None and path.exists()
        self.memory = ReplayMemory(
            backend_cls(path, mode="a", compression=config.compression),
            ReplayPolicy.from_config(config, seed),
        )
        self._filled = False
        """Whether the store holds this study's samples: until it fills (or adopts) its first stage, the
        store is left as an earlier study may have left it, and no sample of it is trained on."""

    def extra_cases(self, stage: StagePlan) -> list[ExtraCase]:
        """Every case in the memory, checksums verified."""
        if not self._filled:
            return []
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
        if not self._filled:
            self.memory.clear()
            self._filled = True
        self.memory.add_center(stage.center, candidates, arrays.__getitem__)

    def adopt_stages(
        self,
        stages: Sequence[StagePlan],
        train_cases: Sequence[CaseRecord],
        manifest: Mapping[str, Any] | None,
    ) -> None:
        """Take over the memory store as the study's last stage left it, every sample verified against its
        checksums and against that stage's logged memory manifest; the policy goes on from the earlier
        centers' candidates as ``dataset.json`` lists them (no arrays are read).

        Raises:
            ConfigError: a memory kept in RAM, or a store that is not where the study wrote it.
            MemoryCorrupted: a sample that fails its checksums or differs from the manifest.
        """
        backend = self.cfg.memory.backend
        if self.path is None:
            raise ConfigError(
                f"memory.backend {backend} kept the replay memory in RAM only: it ended with the training "
                "process, so this study cannot be extended; train with --memory-backend zarr (or hdf5) "
                "and --memory-path"
            )
        if not self._existed:
            scratch = " (a scratch store: memory.path was not set)" if self._scratch is not None else ""
            raise ConfigError(
                f"replay memory store {self.path} not found{scratch}; pass --memory-path with the folder "
                "it was moved to"
            )
        if manifest is None or "samples" not in manifest:
            raise ConfigError(f"stage {stages[-1].name} logged no replay memory manifest to verify against")
        stream = {
            stage.center: [CaseInfo.from_record(r) for r in train_cases if r.center == stage.center]
            for stage in stages
        }
        self.memory.adopt(stream, manifest["samples"])
        self._filled = True

    def close(self) -> None:
        """Close the store; a scratch store (no ``memory.path``), and a store this strategy created and
        never filled, are deleted."""
        self.memory.backend.close()
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
        elif self.path is not None and not self._existed and not self._filled:
            _remove(self.path)


def _remove(path: Path) -> None:
    """Delete a store (a file or a directory) and its writer lock."""
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
    lock_path(path).unlink(missing_ok=True)
