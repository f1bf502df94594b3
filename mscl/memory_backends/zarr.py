"""``zarr``: a zarr 3 directory store; the index is a JSON file replaced atomically on every commit.

Layout::

    memory.zarr/            0o700
      zarr.json             zarr group, attribute ``mscl_memory`` = format version
      index.json            committed samples (key -> slot + metadata); written via os.replace
      samples/<slot>/image  one chunk per array (whole case)
      samples/<slot>/label
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import zarr
from zarr.codecs import ZstdCodec

from mscl.errors import MemoryBackendError, MemoryCorrupted
from mscl.memory_backends.base import FORMAT_VERSION, BaseBackend, StoreIndex
from mscl.memory_backends.files import (
    PRIVATE_DIR,
    Mode,
    WriterLock,
    check_store_path,
    make_private,
    write_private_atomic,
)

INDEX_NAME = "index.json"
CODEC = ZstdCodec(level=1)  # best ratio and compressed read speed in benchmarks/memory_backends.py


class ZarrBackend(BaseBackend):
    """Replay memory in a zarr 3 directory.

    Args:
        path: The store directory (created in mode ``"a"``).
        mode: ``"a"``: read-write under an exclusive writer lock; ``"r"``: read-only, no lock.
        compression: Compress each array with zstd level 1; ``False`` stores raw bytes.

    Raises:
        MemoryBackendError: missing or foreign store, unwritable location, or another writer.
    """

    name = "zarr"
    suffix = ".zarr"

    def __init__(self, path: Path | None, mode: Mode = "a", compression: bool = True) -> None:
        self.path = check_store_path(path, mode, exists=path is not None and Path(path).exists())
        self._compressors = (CODEC,) if compression else None
        self._lock = WriterLock(self.path) if mode == "a" else None
        try:
            self._root = self._open_root(mode)
            super().__init__(str(self.path), mode)
        except BaseException:
            self._release()
            raise

    def _open_root(self, mode: Mode) -> zarr.Group:
        index = self.path / INDEX_NAME
        if index.is_file():
            if mode == "a":  # an index write killed before its rename leaves a temporary file
                for stale in self.path.glob(f".{INDEX_NAME}.tmp-*"):
                    stale.unlink()
            try:
                return zarr.open_group(str(self.path), mode="r" if mode == "r" else "r+")
            except Exception as exc:  # a truncated or foreign zarr.json: file, JSON and metadata errors
                raise MemoryCorrupted(
                    f"{self.path}: the store's zarr.json is unreadable ({type(exc).__name__}); "
                    "delete the store to start a new memory"
                ) from None
        if mode == "r" or (self.path.exists() and any(self.path.iterdir())):
            raise MemoryBackendError(f"{self.path}: not an mscl replay memory (no {INDEX_NAME})")
        self.path.mkdir(mode=PRIVATE_DIR, exist_ok=True)
        root = zarr.open_group(str(self.path), mode="w", attributes={"mscl_memory": FORMAT_VERSION})
        root.create_group("samples")
        make_private(self.path)
        write_private_atomic(index, StoreIndex().to_bytes())
        return root

    def _write(self, slot: str, image: np.ndarray, label: np.ndarray) -> None:
        for kind, array in (("image", image), ("label", label)):
            self._root.create_array(
                f"samples/{slot}/{kind}",
                data=array,
                chunks=array.shape,
                compressors=self._compressors,
                config={"write_empty_chunks": True},
            )
        make_private(self.path / "samples" / slot)

    def _read(self, slot: str) -> tuple[np.ndarray, np.ndarray]:
        arrays = [
            zarr.open_array(str(self.path / "samples" / slot / kind), mode="r")[...]
            for kind in ("image", "label")
        ]
        return np.asarray(arrays[0]), np.asarray(arrays[1])

    def _delete(self, slot: str) -> None:
        shutil.rmtree(self.path / "samples" / slot, ignore_errors=True)

    def _slots(self) -> list[str]:
        return [entry.name for entry in (self.path / "samples").iterdir() if entry.is_dir()]

    def _load_index(self) -> StoreIndex:
        index = self.path / INDEX_NAME
        try:
            data = index.read_bytes()
        except OSError as exc:
            raise MemoryBackendError(f"{index}: cannot read memory index ({exc.strerror})") from None
        return StoreIndex.from_bytes(data, str(index))

    def _save_index(self, index: StoreIndex) -> None:
        write_private_atomic(self.path / INDEX_NAME, index.to_bytes())

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None
