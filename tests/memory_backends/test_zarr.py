"""zarr-specific safety: damaged compressed chunks, orphan sweeping, stale index files."""

from __future__ import annotations

from pathlib import Path

import pytest

from mscl.errors import MemoryBackendError, MemoryCorrupted
from mscl.memory_backends.zarr import INDEX_NAME, ZarrBackend

from .conftest import meta, sample


def _chunk(store: Path, slot: str, kind: str) -> Path:
    (chunk,) = [
        p for p in (store / "samples" / slot / kind).rglob("*") if p.is_file() and p.name != "zarr.json"
    ]
    return chunk


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete"])
def test_damaged_compressed_chunk_is_corruption(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "memory.zarr"
    with ZarrBackend(path) as store:
        store.put("victim", *sample(), meta())
        slot = store._index.samples["victim"].slot
    chunk = _chunk(path, slot, "image")
    data = bytearray(chunk.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
        chunk.write_bytes(bytes(data))
    elif damage == "truncate":
        chunk.write_bytes(bytes(data[: len(data) // 2]))
    else:
        chunk.unlink()
    with ZarrBackend(path, mode="r") as store, pytest.raises(MemoryCorrupted, match="'victim'"):
        store.get("victim")


def test_unreadable_index_is_corruption(tmp_path: Path) -> None:
    path = tmp_path / "memory.zarr"
    ZarrBackend(path).close()
    (path / INDEX_NAME).write_text("{not json")
    with pytest.raises(MemoryCorrupted, match=INDEX_NAME):
        ZarrBackend(path, mode="r")


def test_writer_sweeps_orphans_and_stale_index_files(tmp_path: Path) -> None:
    path = tmp_path / "memory.zarr"
    with ZarrBackend(path) as store:
        store.put("kept", *sample(), meta())
    (path / "samples" / "deadbeef").mkdir()
    (path / f".{INDEX_NAME}.tmp-12345678").write_text("half an index")
    with ZarrBackend(path, mode="r") as reader:
        assert len(reader._slots()) == 2  # readers never delete
    with ZarrBackend(path) as store:
        assert store.keys() == ["kept"] and len(store._slots()) == 1
    assert not list(path.glob(".*tmp-*"))


def test_non_empty_foreign_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "data.zarr").mkdir()
    (tmp_path / "data.zarr" / "zarr.json").write_text("{}")
    with pytest.raises(MemoryBackendError, match="not an mscl replay memory"):
        ZarrBackend(tmp_path / "data.zarr")
