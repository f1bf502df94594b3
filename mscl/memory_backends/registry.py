"""Find memory backends by name through the ``mscl.memory_backends`` entry-point group.

A third-party package adds a backend with no change to mscl::

    [project.entry-points."mscl.memory_backends"]
    s3 = "my_package.s3:S3Backend"
"""

from __future__ import annotations

from pathlib import Path

from mscl.errors import MemoryBackendError
from mscl.memory_backends.base import BackendClass, MemoryBackend
from mscl.memory_backends.files import Mode
from mscl.plugins import MEMORY_BACKENDS_GROUP, Registry

MEMORY_BACKENDS: Registry[BackendClass] = Registry(
    MEMORY_BACKENDS_GROUP, "memory backend", MemoryBackendError
)


def open_backend(
    name: str, path: Path | None = None, mode: Mode = "a", compression: bool = True
) -> MemoryBackend:
    """Open a store with the backend registered as ``name``.

    Args:
        name: Entry-point name, e.g. ``ram``, ``hdf5``, ``zarr``.
        path: Store location (ignored by ``ram``).
        mode: ``"a"`` read-write (exclusive writer) or ``"r"`` read-only.
        compression: Whether the backend compresses arrays.
    """
    return MEMORY_BACKENDS.get(name)(path, mode=mode, compression=compression)


def detect_backend(path: Path) -> str:
    """Guess the backend of an existing store: a ``.h5``/``.hdf5`` file or a zarr directory.

    Raises:
        MemoryBackendError: nothing there, or a path of no known kind.
    """
    path = Path(path)
    if path.is_file() and path.suffix in (".h5", ".hdf5"):
        return "hdf5"
    if path.is_dir() and (path / "zarr.json").is_file():
        return "zarr"
    if not path.exists():
        raise MemoryBackendError(f"{path}: no replay memory there")
    raise MemoryBackendError(
        f"{path}: cannot tell the memory backend (not .h5 nor a zarr directory); pass --backend"
    )
