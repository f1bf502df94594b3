"""The replay memory contract: the :class:`MemoryBackend` protocol, per-sample metadata and shared helpers.

Every backend in this package derives from :class:`BaseBackend`, which owns the whole safety story once:
input checks, checksums, the write-then-commit order of :meth:`BaseBackend.put` and verification on read.
A backend only supplies six storage primitives (write, read, delete arrays; load and save the index; close).
"""

from __future__ import annotations

import re
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Literal, Protocol, Self, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mscl import faults
from mscl.data.store import array_sha256
from mscl.errors import MemoryBackendError, MemoryCorrupted
from mscl.memory_backends.files import Mode

FORMAT_VERSION: Literal[1] = 1
_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class SampleMeta(BaseModel):
    """Why and what a memory sample is. ``put`` fills the checksums, ``nbytes`` and ``added``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    center: str
    subject: str
    contrast: str
    lesion_voxels: int = Field(ge=0, description="Voxels with label >= 0.5.")
    reason: str = Field("", description="Why the replay policy kept this case.")
    image_sha256: str = ""
    label_sha256: str = ""
    nbytes: int = Field(0, ge=0, description="Image plus label bytes, uncompressed.")
    added: datetime | None = Field(None, description="UTC time of the put.")


class IndexEntry(BaseModel):
    """One committed sample: where its arrays live and its metadata."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    slot: str
    meta: SampleMeta


class StoreIndex(BaseModel):
    """The committed content of a store; replacing it atomically is the commit of every write."""

    model_config = ConfigDict(extra="forbid")

    format_version: Literal[1] = FORMAT_VERSION
    samples: dict[str, IndexEntry] = Field(default_factory=dict)

    def to_bytes(self) -> bytes:
        """UTF-8 JSON, keys sorted for stable diffs."""
        return self.model_dump_json(indent=1).encode()

    @classmethod
    def from_bytes(cls, data: bytes, where: str) -> StoreIndex:
        """Parse an index, raising :class:`MemoryCorrupted` naming ``where`` when it is unreadable."""
        try:
            return cls.model_validate_json(data)
        except ValidationError as exc:
            raise MemoryCorrupted(
                f"{where}: memory index is unreadable ({exc.error_count()} problems)"
            ) from None


@runtime_checkable
class MemoryBackend(Protocol):
    """A key-value store of (image, label, meta) samples that returns arrays bit-identical."""

    def put(self, key: str, image: np.ndarray, label: np.ndarray, meta: SampleMeta) -> SampleMeta:
        """Store a sample (replacing ``key``) and return the metadata as stored."""

    def get(self, key: str) -> tuple[np.ndarray, np.ndarray, SampleMeta]:
        """Return ``(image, label, meta)``; raise :class:`MemoryCorrupted` if a checksum fails."""

    def keys(self) -> list[str]:
        """Committed keys, sorted."""

    def meta(self, key: str) -> SampleMeta:
        """Metadata of one sample without reading its arrays."""

    def remove(self, key: str) -> None:
        """Delete a sample."""

    def verify(self) -> list[str]:
        """Keys whose arrays are unreadable or fail their checksums."""

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[str]:
        """Committed keys, sorted (same as :meth:`keys`)."""

    @property
    def nbytes(self) -> int:
        """Uncompressed bytes of every stored image and label."""

    def close(self) -> None:
        """Flush and release the store (and its writer lock)."""

    def __enter__(self) -> Self: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


class BackendClass(Protocol):
    """What the ``mscl.memory_backends`` entry points name: a class opening a store, and its traits."""

    suffix: str
    """Appended to a store's file or folder name (``.zarr``, ``.h5``; empty for ``ram``)."""
    persistent: bool
    """Whether a store outlives its process (``ram`` does not)."""

    def __call__(self, path: Path | None, mode: Mode = "a", compression: bool = True) -> MemoryBackend: ...


def check_sample(key: str, image: np.ndarray, label: np.ndarray) -> None:
    """Reject a sample that must never enter a memory, naming ``key``.

    Raises:
        MemoryBackendError: bad key, non-array input, empty or mismatched shapes, NaN/inf,
            labels outside [0, 1].
    """
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise MemoryBackendError(f"memory key {key!r}: use letters, digits, '.', '_' or '-' (not leading)")
    ranges = {}
    for kind, array in (("image", image), ("label", label)):
        if not isinstance(array, np.ndarray) or array.dtype.kind not in "biuf":
            raise MemoryBackendError(f"memory key {key!r}: {kind} must be a numeric numpy array")
        if array.ndim == 0 or array.size == 0:
            raise MemoryBackendError(f"memory key {key!r}: {kind} is empty or a scalar")
        low, high = array.min(), array.max()  # NaN propagates into min and max: one pass checks both
        if not (np.isfinite(low) and np.isfinite(high)):
            raise MemoryBackendError(f"memory key {key!r}: {kind} contains NaN or inf")
        ranges[kind] = (low, high)
    if image.shape != label.shape:
        raise MemoryBackendError(
            f"memory key {key!r}: image shape {image.shape} != label shape {label.shape}"
        )
    low, high = ranges["label"]
    if low < 0 or high > 1:
        raise MemoryBackendError(f"memory key {key!r}: label values must lie in [0, 1], got [{low}, {high}]")


def seal(meta: SampleMeta, image: np.ndarray, label: np.ndarray) -> SampleMeta:
    """``meta`` with checksums, size and UTC time of the put filled in."""
    return meta.model_copy(
        update={
            "image_sha256": array_sha256(image),
            "label_sha256": array_sha256(label),
            "nbytes": int(image.nbytes + label.nbytes),
            "added": datetime.now(UTC),
        }
    )


def check_sums(where: str, key: str, image: np.ndarray, label: np.ndarray, meta: SampleMeta) -> None:
    """Raise :class:`MemoryCorrupted` naming ``key`` when an array does not match its stored sha256."""
    for kind, array, expected in (("image", image, meta.image_sha256), ("label", label, meta.label_sha256)):
        if array_sha256(array) != expected:
            raise MemoryCorrupted(f"{where}: {kind} of memory sample {key!r} fails its sha256 check")


class BaseBackend(ABC):
    """The shared put/get/remove logic; subclasses store arrays in *slots* and persist the index.

    ``put`` writes the arrays under a fresh slot, then commits by saving the whole index (the one atomic
    step), then deletes the slot it replaced. A writer killed before the commit leaves the previous index,
    whose slots are untouched; orphan slots are swept when the next writer opens the store.
    """

    name: ClassVar[str] = "base"
    suffix: ClassVar[str] = ""
    persistent: ClassVar[bool] = True

    def __init__(self, where: str, mode: Mode) -> None:
        self.where = where
        self.mode = mode
        self._index = self._load_index()
        if mode == "a":
            self._sweep(set(self._slots()) - {entry.slot for entry in self._index.samples.values()})

    # --- storage primitives -------------------------------------------------------------------------------
    @abstractmethod
    def _write(self, slot: str, image: np.ndarray, label: np.ndarray) -> None:
        """Store both arrays under ``slot`` (not yet visible: no index entry)."""

    @abstractmethod
    def _read(self, slot: str) -> tuple[np.ndarray, np.ndarray]:
        """Both arrays of ``slot``; any failure propagates and is reported as corruption."""

    @abstractmethod
    def _delete(self, slot: str) -> None:
        """Remove a slot's arrays."""

    @abstractmethod
    def _slots(self) -> list[str]:
        """Every slot present in storage, committed or not."""

    @abstractmethod
    def _load_index(self) -> StoreIndex:
        """The committed index (empty for a new store)."""

    @abstractmethod
    def _save_index(self, index: StoreIndex) -> None:
        """Replace the committed index atomically: the commit point of every write."""

    @abstractmethod
    def _release(self) -> None:
        """Close files and drop the writer lock."""

    # --- the contract --------------------------------------------------------------------------------------
    def put(self, key: str, image: np.ndarray, label: np.ndarray, meta: SampleMeta) -> SampleMeta:
        """Validate, write the arrays, then commit the index entry; returns the stored metadata.

        Raises:
            MemoryBackendError: read-only store or a sample failing :func:`check_sample`.
        """
        self._writable()
        check_sample(key, image, label)
        image, label = np.ascontiguousarray(image), np.ascontiguousarray(label)
        stored = seal(meta, image, label)
        slot = uuid.uuid4().hex
        self._write(slot, image, label)
        samples = dict(self._index.samples)
        old = samples.get(key)
        samples[key] = IndexEntry(slot=slot, meta=stored)
        self._commit(samples)
        if old is not None:
            self._delete(old.slot)
        return stored

    def get(self, key: str) -> tuple[np.ndarray, np.ndarray, SampleMeta]:
        """Read a sample and verify both checksums.

        Raises:
            MemoryBackendError: unknown key.
            MemoryCorrupted: arrays missing, undecodable or not matching their sha256.
        """
        entry = self._entry(key)
        try:
            image, label = self._read(entry.slot)
        except Exception as exc:  # any storage or codec failure of committed data is corruption
            raise MemoryCorrupted(
                f"{self.where}: memory sample {key!r} is unreadable ({type(exc).__name__})"
            ) from exc
        check_sums(self.where, key, image, label, entry.meta)
        return image, label, entry.meta

    def meta(self, key: str) -> SampleMeta:
        """Metadata of ``key`` without reading its arrays."""
        return self._entry(key).meta

    def keys(self) -> list[str]:
        """Committed keys, sorted."""
        return sorted(self._index.samples)

    def remove(self, key: str) -> None:
        """Commit an index without ``key``, then delete its arrays."""
        self._writable()
        entry = self._entry(key)
        self._commit({k: v for k, v in self._index.samples.items() if k != key})
        self._delete(entry.slot)

    def verify(self) -> list[str]:
        """Keys whose arrays are unreadable or fail their checksums."""
        bad = []
        for key in self.keys():
            try:
                self.get(key)
            except MemoryCorrupted:
                bad.append(key)
        return bad

    def __len__(self) -> int:
        return len(self._index.samples)

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __contains__(self, key: object) -> bool:
        return key in self._index.samples

    @property
    def nbytes(self) -> int:
        """Uncompressed bytes of every stored image and label."""
        return sum(entry.meta.nbytes for entry in self._index.samples.values())

    def close(self) -> None:
        """Release files and the writer lock (idempotent)."""
        self._release()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.where!r}, mode={self.mode!r}, samples={len(self)})"

    # --- internals -----------------------------------------------------------------------------------------
    def _entry(self, key: str) -> IndexEntry:
        try:
            return self._index.samples[key]
        except KeyError:
            raise MemoryBackendError(f"{self.where}: no memory sample {key!r}") from None

    def _writable(self) -> None:
        if self.mode != "a":
            raise MemoryBackendError(f"{self.where}: replay memory is open read-only (mode='r')")

    def _commit(self, samples: dict[str, IndexEntry]) -> None:
        index = StoreIndex(samples=samples)
        faults.hit("memory_commit")
        self._save_index(index)
        self._index = index

    def _sweep(self, orphans: set[str]) -> None:
        for slot in sorted(orphans):
            self._delete(slot)
