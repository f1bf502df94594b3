"""``ram``: an in-process memory (a dict); nothing persists after :meth:`close`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mscl.memory_backends.base import BaseBackend, StoreIndex
from mscl.memory_backends.files import Mode


class RamBackend(BaseBackend):
    """Samples kept as private copies in a dict; ``path`` and ``compression`` are ignored.

    Args:
        path: Unused (accepted so every backend opens the same way).
        mode: ``"a"`` (read-write) or ``"r"`` (read-only, hence always empty).
        compression: Unused.
    """

    name = "ram"
    suffix = ""
    persistent = False

    def __init__(self, path: Path | None = None, mode: Mode = "a", compression: bool = True) -> None:
        self._arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._saved = StoreIndex()
        super().__init__(f"ram:{id(self):x}", mode)

    def _write(self, slot: str, image: np.ndarray, label: np.ndarray) -> None:
        self._arrays[slot] = (image.copy(), label.copy())

    def _read(self, slot: str) -> tuple[np.ndarray, np.ndarray]:
        image, label = self._arrays[slot]
        return image.copy(), label.copy()

    def _delete(self, slot: str) -> None:
        self._arrays.pop(slot, None)

    def _slots(self) -> list[str]:
        return list(self._arrays)

    def _load_index(self) -> StoreIndex:
        return self._saved

    def _save_index(self, index: StoreIndex) -> None:
        self._saved = index

    def _release(self) -> None:
        """Nothing to release: the dict lives as long as the object."""
