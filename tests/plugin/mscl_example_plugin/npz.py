"""``npz``: a replay memory as a folder of ``.npz`` files, one per sample, and a JSON index.

mscl's ``BaseBackend`` does the checks, checksums and write-then-commit; this backend only moves bytes,
with mscl's file helpers for the writer lock, private permissions and atomic writes.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from mscl.errors import MemoryBackendError
from mscl.memory_backends.base import BaseBackend, StoreIndex
from mscl.memory_backends.files import (
    PRIVATE_DIR,
    Mode,
    WriterLock,
    check_store_path,
    write_private_atomic,
)

INDEX = "index.json"


class NpzBackend(BaseBackend):
    """Samples as ``<store>/<slot>.npz`` (compressed or not), the index as ``<store>/index.json``."""

    name = "npz"
    suffix = ".npzd"

    def __init__(self, path: Path | None, mode: Mode = "a", compression: bool = True) -> None:
        self.path = check_store_path(path, mode, exists=path is not None and Path(path).exists())
        self._compression = compression
        self._lock = WriterLock(self.path) if mode == "a" else None
        try:
            if not (self.path / INDEX).is_file():
                if mode == "r" or (self.path.exists() and any(self.path.iterdir())):
                    raise MemoryBackendError(f"{self.path}: not an mscl replay memory (no {INDEX})")
                self.path.mkdir(mode=PRIVATE_DIR, exist_ok=True)
                write_private_atomic(self.path / INDEX, StoreIndex().to_bytes())
            super().__init__(str(self.path), mode)
        except BaseException:
            self._release()
            raise

    def _write(self, slot: str, image: np.ndarray, label: np.ndarray) -> None:
        buffer = io.BytesIO()
        (np.savez_compressed if self._compression else np.savez)(buffer, image=image, label=label)
        write_private_atomic(self.path / f"{slot}.npz", buffer.getvalue())

    def _read(self, slot: str) -> tuple[np.ndarray, np.ndarray]:
        with np.load(self.path / f"{slot}.npz", allow_pickle=False) as arrays:
            return arrays["image"], arrays["label"]

    def _delete(self, slot: str) -> None:
        (self.path / f"{slot}.npz").unlink(missing_ok=True)

    def _slots(self) -> list[str]:
        return [entry.stem for entry in self.path.glob("*.npz")]

    def _load_index(self) -> StoreIndex:
        return StoreIndex.from_bytes((self.path / INDEX).read_bytes(), str(self.path / INDEX))

    def _save_index(self, index: StoreIndex) -> None:
        write_private_atomic(self.path / INDEX, index.to_bytes())

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None
