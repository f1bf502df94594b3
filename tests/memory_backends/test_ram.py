"""What only the in-process backend needs: copies in, copies out, corruption still caught."""

from __future__ import annotations

import pytest

from mscl.errors import MemoryCorrupted
from mscl.memory_backends.ram import RamBackend

from .conftest import meta, sample


def test_caller_arrays_are_not_aliased() -> None:
    image, label = sample()
    store = RamBackend()
    store.put("case-1", image, label, meta())
    image[...] = 0
    got, _, _ = store.get("case-1")
    got[...] = 1
    assert store.verify() == []


def test_in_memory_corruption_is_caught() -> None:
    store = RamBackend()
    store.put("case-1", *sample(), meta())
    ((stored_image, _),) = store._arrays.values()
    stored_image.flat[3] += 1
    with pytest.raises(MemoryCorrupted, match="image of memory sample 'case-1'"):
        store.get("case-1")
