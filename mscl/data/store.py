"""Volume stores of a dataset directory: one float16 image and one float16 label array per case.

Two formats share one small interface: ``volumes.zarr`` (zarr 3, default) and ``volumes.h5`` (h5py).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol, cast

import numpy as np

from mscl.errors import DataError, first_line

if TYPE_CHECKING:
    import zarr

StoreFormat = Literal["zarr", "hdf5"]
STORE_NAMES: dict[str, str] = {"zarr": "volumes.zarr", "hdf5": "volumes.h5"}
STORED_DTYPE = np.float16


def array_sha256(array: np.ndarray) -> str:
    """sha256 of an array's C-ordered bytes, with dtype and shape mixed in."""
    digest = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def as_stored(array: np.ndarray) -> np.ndarray:
    """Cast to the stored dtype (float16, C-contiguous)."""
    return np.ascontiguousarray(array, dtype=STORED_DTYPE)


class VolumeStore(Protocol):
    """Reads and writes the case arrays of one dataset directory."""

    def write(self, case_id: str, image: np.ndarray, label: np.ndarray) -> None:
        """Store a case's image and label (already float16)."""

    def read(self, case_id: str) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(image, label)`` as float16 arrays."""

    def close(self) -> None:
        """Flush and release the store."""


class ZarrVolumeStore:
    """``volumes.zarr``: groups ``images`` and ``labels``, one chunked array per case."""

    def __init__(self, path: Path, mode: Literal["r", "w"] = "r") -> None:
        import zarr

        self.path = Path(path)
        try:
            self._root = zarr.open_group(str(self.path), mode="w" if mode == "w" else "r")
        except Exception as exc:  # missing, truncated or foreign zarr.json: file, JSON and metadata errors
            raise DataError(f"{self.path}: cannot open volume store ({first_line(exc)})") from None

    def write(self, case_id: str, image: np.ndarray, label: np.ndarray) -> None:
        for group, array in (("images", image), ("labels", label)):
            self._root.create_array(
                f"{group}/{case_id}", data=as_stored(array), chunks=array.shape, overwrite=True
            )

    def read(self, case_id: str) -> tuple[np.ndarray, np.ndarray]:
        arrays = []
        for group in ("images", "labels"):
            try:
                array = cast("zarr.Array", self._root[f"{group}/{case_id}"])
            except KeyError:
                raise DataError(f"{self.path}: case {case_id!r} missing from the volume store") from None
            except Exception as exc:  # a truncated or foreign zarr.json: JSON, metadata and codec errors
                raise DataError(
                    f"{self.path}: {group}/{case_id} has unreadable metadata ({type(exc).__name__})"
                ) from None
            try:
                arrays.append(np.asarray(array[...]))
            except Exception as exc:  # a truncated or missing chunk: the codecs raise all kinds of errors
                raise DataError(
                    f"{self.path}: {group}/{case_id} cannot be read, a chunk is corrupt or missing "
                    f"({type(exc).__name__})"
                ) from None
        return arrays[0], arrays[1]

    def close(self) -> None:
        """Zarr writes through; nothing to flush."""


class Hdf5VolumeStore:
    """``volumes.h5``: datasets ``images/<id>`` and ``labels/<id>``."""

    def __init__(self, path: Path, mode: Literal["r", "w"] = "r") -> None:
        import h5py

        self.path = Path(path)
        try:
            self._file = h5py.File(self.path, mode)
        except OSError as exc:
            raise DataError(f"{self.path}: cannot open volume store ({exc})") from None

    def write(self, case_id: str, image: np.ndarray, label: np.ndarray) -> None:
        for group, array in (("images", image), ("labels", label)):
            self._file.create_dataset(f"{group}/{case_id}", data=as_stored(array))

    def read(self, case_id: str) -> tuple[np.ndarray, np.ndarray]:
        try:
            return self._file[f"images/{case_id}"][()], self._file[f"labels/{case_id}"][()]
        except KeyError:
            raise DataError(f"{self.path}: case {case_id!r} missing from the volume store") from None
        except (OSError, RuntimeError, ValueError) as exc:  # a truncated file or a corrupt chunk
            raise DataError(f"{self.path}: case {case_id!r} cannot be read ({type(exc).__name__})") from None

    def close(self) -> None:
        self._file.close()


def open_store(directory: Path, fmt: StoreFormat, mode: Literal["r", "w"] = "r") -> VolumeStore:
    """Open the volume store of a dataset directory."""
    path = Path(directory) / STORE_NAMES[fmt]
    if mode == "r" and not path.exists():
        raise DataError(f"{path}: volume store missing")
    return ZarrVolumeStore(path, mode) if fmt == "zarr" else Hdf5VolumeStore(path, mode)
