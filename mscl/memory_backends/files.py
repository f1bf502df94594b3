"""Files of disk-backed memory stores: owner-only permissions, atomic writes, the single-writer lock."""

from __future__ import annotations

import fcntl
import os
import uuid
from pathlib import Path
from typing import Literal

from mscl.errors import MemoryBackendError

Mode = Literal["r", "a"]
PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


def lock_path(path: Path) -> Path:
    """The writer lock of a store: a hidden sibling ``.<name>.lock``."""
    return path.parent / f".{path.name}.lock"


class WriterLock:
    """An exclusive ``fcntl.flock`` on a store's lock file, held until :meth:`release` (or process death)."""

    def __init__(self, store: Path) -> None:
        self.path = lock_path(store)
        try:
            self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE)
        except OSError as exc:
            raise MemoryBackendError(f"{store}: cannot create lock file ({exc.strerror})") from None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            self._fd = None
            raise MemoryBackendError(
                f"{store}: another writer holds this replay memory (lock {self.path}); open it with mode='r'"
            ) from None

    def release(self) -> None:
        """Unlock and close the lock file (idempotent)."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def write_private_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` (mode 0o600) through a synced temporary sibling and ``os.replace``."""
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def make_private(path: Path) -> None:
    """Restrict ``path`` and, for a directory, everything below it to the owner (0o700 / 0o600)."""
    if not path.is_dir():
        path.chmod(PRIVATE_FILE)
        return
    path.chmod(PRIVATE_DIR)
    for root, dirs, files in os.walk(path):
        for name in dirs:
            Path(root, name).chmod(PRIVATE_DIR)
        for name in files:
            Path(root, name).chmod(PRIVATE_FILE)


def check_store_path(path: Path | None, mode: Mode, exists: bool) -> Path:
    """Validate a disk store location for ``mode``, naming the path in the error."""
    if path is None:
        raise MemoryBackendError("this memory backend needs a path (memory.path)")
    path = Path(path)
    if mode == "r" and not exists:
        raise MemoryBackendError(f"{path}: no replay memory there")
    if mode not in ("r", "a"):
        raise MemoryBackendError(f"{path}: unknown memory mode {mode!r}; use 'r' or 'a'")
    parent = path.parent
    if mode == "a" and not exists and not (parent.is_dir() and os.access(parent, os.W_OK | os.X_OK)):
        raise MemoryBackendError(f"{path}: parent folder {parent} is missing or not writable")
    return path
