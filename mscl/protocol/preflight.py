"""What a user can get wrong, checked before the first MLflow run of a study is created.

A study that fails after its run was created leaves a FAILED run in MLflow (and, seven stages in, hours of
lost work). :func:`check_study` checks up front what does not need training to be found out: the device,
the folders the study writes (resume points, replay memory), and that every case of the study's centers can
be read (the volume store's headers and chunks decode to the shape and dtype the manifest records; with
``verify`` every array is also checked against its sha256).
"""

from __future__ import annotations

import os
from pathlib import Path

from mscl.config import ExperimentConfig
from mscl.data.dataset import PreparedDataset
from mscl.errors import ConfigError, MemoryBackendError, MsclError
from mscl.protocol.order import resolve_order, select_centers


def check_study(dataset: PreparedDataset, cfg: ExperimentConfig, verify: bool = False) -> None:
    """Raise the error a study of ``cfg`` on ``dataset`` would meet, before it creates anything.

    Raises:
        ConfigError: no such device, an unusable ``train.checkpoint_dir``, unknown centers, an order that
            does not name the study's centers.
        MemoryBackendError: an unusable ``memory.path``.
        DataError: a case that cannot be read (or, with ``verify``, fails its sha256).
    """
    from mscl.engine.device import resolve_device
    from mscl.memory_backends.registry import MEMORY_BACKENDS

    resolve_device(cfg.train.device)
    check_folder(cfg.train.checkpoint_dir, "train.checkpoint_dir", ConfigError)
    backend = MEMORY_BACKENDS.get(cfg.memory.backend)
    if cfg.memory.path is not None and getattr(backend, "persistent", True):
        check_folder(cfg.memory.path, "memory.path", MemoryBackendError)
    centers = select_centers(dataset.manifest.center_names(), cfg.protocol.centers)
    subjects = {c.name: c.subjects for c in dataset.manifest.centers if c.name in centers}
    resolve_order(cfg.protocol.order, subjects, cfg.protocol.order_seed or 0)
    dataset.check_readable([case.id for case in dataset.manifest.cases if case.center in centers], verify)


def check_folder(path: Path, setting: str, error: type[MsclError]) -> None:
    """``path`` is, or can be created as, a folder this process may write into.

    Raises:
        ``error``: naming ``setting``, the path and what is wrong (a regular file on the way, no write
            permission).
    """
    path = Path(path)
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        where = "is a regular file" if existing == path else f"lies under the regular file {existing}"
        raise error(f"{setting} {path}: {where}, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise error(f"{setting} {path}: {existing} is not writable")
