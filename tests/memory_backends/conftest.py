"""Fixtures of the replay-memory tests: every registered backend, tiny seeded samples."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from mscl.memory_backends.base import MemoryBackend, SampleMeta
from mscl.memory_backends.registry import available_backends, get_backend, open_backend

SHAPE = (6, 7, 5)
OpenStore = Callable[..., MemoryBackend]


def sample(
    seed: int = 0, shape: tuple[int, ...] = SHAPE, dtype: str = "float16"
) -> tuple[np.ndarray, np.ndarray]:
    """A random image (incompressible, unique bytes) and a soft label in [0, 1]."""
    rng = np.random.default_rng(seed)
    image = rng.normal(size=shape).astype(dtype)
    label = np.clip(rng.normal(0.2, 0.4, size=shape), 0, 1).astype(dtype)
    return image, label


def meta(center: str = "BWH", subject: str = "sub-01", reason: str = "") -> SampleMeta:
    """Metadata as a caller gives it (checksums filled by put)."""
    return SampleMeta(center=center, subject=subject, contrast="FLAIR", lesion_voxels=12, reason=reason)


@pytest.fixture(params=available_backends())
def backend_name(request: pytest.FixtureRequest) -> str:
    """Every registered backend: a new one gets the whole contract suite."""
    return request.param


@pytest.fixture
def store_path(backend_name: str, tmp_path: Path) -> Path:
    """Where the backend under test keeps its store."""
    return tmp_path / f"memory{getattr(get_backend(backend_name), 'suffix', '')}"


@pytest.fixture
def open_store(backend_name: str, store_path: Path) -> OpenStore:
    """Open the store under test; every store opened here is closed at teardown."""
    opened: list[MemoryBackend] = []

    def _open(mode: str = "a", compression: bool = True) -> MemoryBackend:
        store = open_backend(backend_name, store_path, mode=mode, compression=compression)  # type: ignore[arg-type]
        opened.append(store)
        return store

    yield _open
    for store in opened:
        store.close()


@pytest.fixture
def persistent(backend_name: str) -> None:
    """Skip tests about what survives a process for backends that keep nothing on disk."""
    if not getattr(get_backend(backend_name), "persistent", True):
        pytest.skip(f"{backend_name}: in-process backend, nothing persists (persistence-only test)")
