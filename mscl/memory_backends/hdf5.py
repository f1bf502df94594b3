"""``hdf5``: one HDF5 file; the index is a dataset rewritten and flushed on every commit.

Layout: ``/samples/<slot>/image``, ``/samples/<slot>/label`` (one chunk per array when compressed,
contiguous otherwise) and ``/index`` (the UTF-8 JSON index as uint8). The writer keeps the file open and
flushes after each commit only, so the bytes on disk move from one committed state to the next: HDF5 holds
new metadata in its cache until the flush, and new array data lands in unreferenced space.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from mscl.errors import MemoryBackendError
from mscl.memory_backends.base import FORMAT_VERSION, BaseBackend, StoreIndex
from mscl.memory_backends.files import PRIVATE_FILE, Mode, WriterLock, check_store_path

INDEX_NAME = "index"
COMPRESSION = {"compression": "gzip", "compression_opts": 1, "shuffle": True}


class Hdf5Backend(BaseBackend):
    """Replay memory in a single HDF5 file.

    Args:
        path: The ``.h5`` file (created in mode ``"a"`` with permissions 0o600).
        mode: ``"a"``: read-write under an exclusive writer lock; ``"r"``: read-only snapshot, no lock.
        compression: gzip level 1 with byte shuffle, one chunk per array; ``False`` stores raw bytes.

    Raises:
        MemoryBackendError: missing, foreign or unreadable file, unwritable location, or another writer.
    """

    name = "hdf5"
    suffix = ".h5"

    def __init__(self, path: Path | None, mode: Mode = "a", compression: bool = True) -> None:
        self.path = check_store_path(path, mode, exists=path is not None and Path(path).exists())
        self._compression = COMPRESSION if compression else {}
        self._lock = WriterLock(self.path) if mode == "a" else None
        self._file: h5py.File | None = None
        try:
            self._file = self._open(mode)
            super().__init__(str(self.path), mode)
        except BaseException:
            self._release()
            raise

    def _open(self, mode: Mode) -> h5py.File:
        created = mode == "a" and not self.path.exists()
        if created:
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))
        try:
            # HDF5's own file locking would stop readers while a writer is open; our lock file guards writers.
            handle = h5py.File(self.path, "w" if created else ("r" if mode == "r" else "r+"), locking=False)
        except OSError as exc:
            raise MemoryBackendError(f"{self.path}: cannot open as HDF5 replay memory ({exc})") from None
        if created:
            handle.attrs["mscl_memory"] = FORMAT_VERSION
            handle.create_group("samples")
            self._write_index(handle, StoreIndex())
        elif INDEX_NAME not in handle or "samples" not in handle:
            handle.close()
            raise MemoryBackendError(f"{self.path}: not an mscl replay memory (no /{INDEX_NAME})")
        return handle

    @property
    def _h5(self) -> h5py.File:
        if self._file is None:
            raise MemoryBackendError(f"{self.path}: replay memory is closed")
        return self._file

    def _write(self, slot: str, image: np.ndarray, label: np.ndarray) -> None:
        group = self._h5["samples"].create_group(slot)
        for kind, array in (("image", image), ("label", label)):
            chunks = array.shape if self._compression else None
            group.create_dataset(kind, data=array, chunks=chunks, **self._compression)

    def _read(self, slot: str) -> tuple[np.ndarray, np.ndarray]:
        group = self._h5["samples"][slot]
        return group["image"][()], group["label"][()]

    def _delete(self, slot: str) -> None:
        samples = self._h5["samples"]
        if slot in samples:
            del samples[slot]
        self._h5.flush()

    def _slots(self) -> list[str]:
        return list(self._h5["samples"])

    def _load_index(self) -> StoreIndex:
        where = f"{self.path}:/{INDEX_NAME}"
        try:
            data = self._h5[INDEX_NAME][()].tobytes()
        except (OSError, KeyError, AttributeError) as exc:
            raise MemoryBackendError(f"{where}: cannot read memory index ({exc})") from None
        return StoreIndex.from_bytes(data, where)

    def _save_index(self, index: StoreIndex) -> None:
        self._write_index(self._h5, index)

    @staticmethod
    def _write_index(handle: h5py.File, index: StoreIndex) -> None:
        if INDEX_NAME in handle:
            del handle[INDEX_NAME]
        handle.create_dataset(INDEX_NAME, data=np.frombuffer(index.to_bytes(), dtype=np.uint8))
        handle.flush()

    def _release(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None
