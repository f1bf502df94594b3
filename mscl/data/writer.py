"""Atomic writing of a dataset directory: a temporary sibling, renamed into place when complete."""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import numpy as np

from mscl.data.manifest import CaseRecord, DatasetManifest
from mscl.data.store import StoreFormat, VolumeStore, array_sha256, as_stored, open_store
from mscl.errors import DataError


@dataclass
class PreparedCase:
    """A preprocessed (subject, contrast) pair ready to be stored."""

    subject: str
    center: str
    contrast: str
    image: np.ndarray
    label: np.ndarray
    spacing: tuple[float, float, float]
    source_image: str | None = None
    source_label: str | None = None

    @property
    def case_id(self) -> str:
        """``<subject>_<contrast>``: unique within a dataset."""
        return f"{self.subject}_{self.contrast}"


def lesion_stats(label: np.ndarray, spacing: tuple[float, float, float]) -> tuple[int, float]:
    """Voxels with label >= 0.5 and the soft lesion volume in mL."""
    voxel_ml = float(np.prod(spacing)) / 1000.0
    return int((label >= 0.5).sum()), float(label.astype(np.float64).sum() * voxel_ml)


def check_output(out: Path, overwrite: bool) -> None:
    """Fail early when ``out`` cannot be written: it exists (without ``overwrite``) or its folder is unusable.

    Raises:
        DataError: naming the directory at fault.
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise DataError(f"{out}: output directory exists; pass --overwrite to replace it")
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: exists and is not a directory")
    parent = out.parent
    if not parent.is_dir():
        raise DataError(f"{parent}: output folder does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise DataError(f"{parent}: output folder is not writable")


def drop_shared_write(folder: Path) -> None:
    """Remove group and world write permission from ``folder`` and everything below it: a dataset is
    owner-writable only, whatever the umask it was written under."""
    for path in [folder, *folder.rglob("*")]:
        mode = path.lstat().st_mode
        if not path.is_symlink() and mode & 0o022:
            path.chmod(mode & ~0o022 & 0o7777)


def temporary_sibling(out: Path) -> Path:
    """A fresh hidden name beside ``out`` to write it under until it is complete."""
    return out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"


def move_into_place(tmp: Path, out: Path) -> Path:
    """Rename the complete directory ``tmp`` to ``out`` (owner-writable only), replacing an existing one."""
    drop_shared_write(tmp)
    if out.exists():
        trash = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
        out.rename(trash)
        tmp.rename(out)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        tmp.rename(out)
    return out


@dataclass
class DatasetWriter:
    """Write cases into ``<out>``'s temporary sibling; :meth:`commit` renames it into place.

    Used as a context manager: leaving the block with an exception removes the temporary directory, so an
    interrupted prepare leaves nothing behind. ``overwrite`` replaces an existing directory at commit.
    """

    out: Path
    fmt: StoreFormat = "zarr"
    overwrite: bool = False
    records: list[CaseRecord] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        check_output(self.out, self.overwrite)
        self.tmp = temporary_sibling(self.out)
        self._store: VolumeStore | None = None

    def __enter__(self) -> DatasetWriter:
        try:
            self.tmp.mkdir()
        except OSError as exc:
            raise DataError(f"{self.out.parent}: cannot create output directory ({exc.strerror})") from None
        self._store = open_store(self.tmp, self.fmt, mode="w")
        return self

    def add(self, case: PreparedCase, split: str) -> CaseRecord:
        """Store one case and return its manifest record."""
        assert self._store is not None, "use DatasetWriter as a context manager"
        image, label = as_stored(case.image), as_stored(case.label)
        if image.shape != label.shape:
            raise DataError(f"case {case.case_id}: image {image.shape} and label {label.shape} differ")
        self._store.write(case.case_id, image, label)
        voxels, ml = lesion_stats(label, case.spacing)
        record = CaseRecord(
            id=case.case_id,
            subject=case.subject,
            center=case.center,
            contrast=case.contrast,
            split=split,  # type: ignore[arg-type]
            shape=image.shape,  # type: ignore[arg-type]
            spacing=case.spacing,
            lesion_voxels=voxels,
            lesion_ml=ml,
            image_sha256=array_sha256(image),
            label_sha256=array_sha256(label),
            source_image=case.source_image,
            source_label=case.source_label,
        )
        self.records.append(record)
        return record

    def commit(self, manifest: DatasetManifest) -> Path:
        """Close the store, write ``dataset.json``, then rename the directory into place."""
        assert self._store is not None
        self._store.close()
        self._store = None
        manifest.write(self.tmp)
        return move_into_place(self.tmp, self.out)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
        if self.tmp.exists():
            shutil.rmtree(self.tmp, ignore_errors=True)
