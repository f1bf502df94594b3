"""Backend lookup by entry-point name, including a plugin that lives outside mscl."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from mscl.errors import MemoryBackendError
from mscl.memory_backends.base import MemoryBackend
from mscl.memory_backends.registry import MEMORY_BACKENDS, detect_backend, open_backend

from .conftest import meta, sample

PLUGIN = textwrap.dedent(
    '''
    """A third-party backend registered by its own dist-info."""
    from mscl.memory_backends.ram import RamBackend


    class ScratchBackend(RamBackend):
        name = "scratch"
    '''
)


@pytest.fixture
def plugin_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Install ``mscl_scratch_plugin`` as an importable distribution with an entry point, without pip."""
    (tmp_path / "mscl_scratch_plugin.py").write_text(PLUGIN)
    info = tmp_path / "mscl_scratch_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mscl-scratch-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[mscl.memory_backends]\nscratch = mscl_scratch_plugin:ScratchBackend\n"
        "broken = mscl_scratch_plugin:Missing\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))


def test_builtin_backends_are_registered() -> None:
    assert {"ram", "hdf5", "zarr"} <= set(MEMORY_BACKENDS.names())
    assert MEMORY_BACKENDS.get("hdf5").__name__ == "Hdf5Backend"


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(MemoryBackendError, match=r"unknown memory backend 'nope'; known: .*hdf5.*ram.*zarr"):
        MEMORY_BACKENDS.get("nope")


def test_plugin_outside_the_package_is_found_by_name(plugin_on_path: None) -> None:
    assert "scratch" in MEMORY_BACKENDS.names()
    with open_backend("scratch") as store:
        assert isinstance(store, MemoryBackend) and type(store).__module__ == "mscl_scratch_plugin"
        store.put("case-1", *sample(), meta())
        assert store.keys() == ["case-1"]


def test_plugin_that_cannot_load_is_a_clear_error(plugin_on_path: None) -> None:
    with pytest.raises(MemoryBackendError, match=r"'broken'.*cannot be loaded"):
        MEMORY_BACKENDS.get("broken")


def test_detect_backend_from_the_path(tmp_path: Path) -> None:
    open_backend("hdf5", tmp_path / "m.h5").close()
    open_backend("zarr", tmp_path / "m.zarr").close()
    assert detect_backend(tmp_path / "m.h5") == "hdf5"
    assert detect_backend(tmp_path / "m.zarr") == "zarr"
    with pytest.raises(MemoryBackendError, match="no replay memory"):
        detect_backend(tmp_path / "missing.h5")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(MemoryBackendError, match="--backend"):
        detect_backend(tmp_path / "notes.txt")
