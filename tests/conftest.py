"""Shared fixtures: a tiny hand-made multi-center dataset (bright cubes in noise, 3 centers)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from mscl.testing.data import build_blob_dataset

collect_ignore = ["plugin"]  # the example plugin's own tests run in a subprocess (tests/test_plugin.py)


@pytest.fixture(scope="session")
def blob_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three centers (4, 3, 3 subjects); ``Small`` is a different contrast (dark lesions)."""
    return build_blob_dataset(tmp_path_factory.mktemp("blobs") / "dataset")


@pytest.fixture
def umask_000() -> Iterator[None]:
    """Run with umask 000: whatever mscl writes must still not be group- or world-writable."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)
