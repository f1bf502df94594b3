"""hdf5-specific safety: damaged compressed chunks and foreign files."""

from __future__ import annotations

from pathlib import Path

import h5py
import pytest

from mscl.errors import MemoryBackendError, MemoryCorrupted
from mscl.memory_backends.hdf5 import Hdf5Backend

from .conftest import meta, sample


@pytest.mark.parametrize("where", [0.1, 0.5, 0.9])
def test_damaged_compressed_chunk_is_corruption(tmp_path: Path, where: float) -> None:
    path = tmp_path / "memory.h5"
    with Hdf5Backend(path) as store:
        store.put("victim", *sample(), meta())
        slot = store._index.samples["victim"].slot
    with h5py.File(path, "r") as handle:
        info = handle[f"samples/{slot}/image"].id.get_chunk_info(0)
    data = bytearray(path.read_bytes())
    data[info.byte_offset + int(info.size * where)] ^= 0xFF
    path.write_bytes(bytes(data))
    with Hdf5Backend(path, mode="r") as store, pytest.raises(MemoryCorrupted, match="'victim'"):
        store.get("victim")


def test_foreign_hdf5_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "volumes.h5"
    with h5py.File(path, "w") as handle:
        handle["images/x"] = [1, 2]
    with pytest.raises(MemoryBackendError, match="not an mscl replay memory"):
        Hdf5Backend(path)
