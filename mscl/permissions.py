"""What mscl writes is owner-writable and never group- or world-writable, whatever the umask.

Datasets, the sqlite tracking database, checkpoints, resume points, local artifacts and reports are written
by mscl, zarr, h5py, sqlite and MLflow alike; instead of chmod-ing each file, every command runs with
:data:`NO_SHARED_WRITE` added to the umask (files 0o644 or tighter, folders 0o755 or tighter). The replay
memory stores and the resume points are tighter still (0o600 / 0o700, owner-only).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

NO_SHARED_WRITE = 0o022
"""Umask bits always set while mscl writes: no write permission for the group or the world."""


@contextmanager
def owner_writes() -> Iterator[None]:
    """Run the block with :data:`NO_SHARED_WRITE` added to the process umask (never loosened), then restore
    the umask (it is per process: spawned workers inherit it)."""
    previous = os.umask(0o077)
    os.umask(previous | NO_SHARED_WRITE)
    try:
        yield
    finally:
        os.umask(previous)


def make_folders(path: Path, mode: int) -> None:
    """Create ``path`` and every missing folder above it with ``mode`` (``Path.mkdir(parents=True)`` gives
    the missing parents the umask's mode instead)."""
    missing = []
    path = Path(path)
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        folder.mkdir(mode=mode, exist_ok=True)
