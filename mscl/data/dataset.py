"""Read a prepared dataset directory: manifest plus volume store, with checksum verification."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

import numpy as np

from mscl.data.manifest import CaseRecord, DatasetManifest
from mscl.data.store import STORED_DTYPE, VolumeStore, array_sha256, open_store
from mscl.errors import DataError


class PreparedDataset:
    """A dataset directory opened for reading (stage contract 1)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.manifest = DatasetManifest.read(self.directory)
        self._store: VolumeStore = open_store(self.directory, self.manifest.store, mode="r")
        self._by_id = {case.id: case for case in self.manifest.cases}

    def case(self, case_id: str) -> CaseRecord:
        """The manifest record of a case."""
        try:
            return self._by_id[case_id]
        except KeyError:
            raise DataError(f"{self.directory}: no case {case_id!r}") from None

    def load(self, case_id: str, verify: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Return a case's float16 ``(image, label)``; with ``verify`` the sha256 of both is checked."""
        record = self.case(case_id)
        image, label = self._store.read(case_id)
        if verify:
            for kind, array, expected in (
                ("image", image, record.image_sha256),
                ("label", label, record.label_sha256),
            ):
                if array_sha256(array) != expected:
                    raise DataError(f"{self.directory}: {kind} of case {case_id!r} fails its sha256 check")
        return image, label

    def check_readable(self, case_ids: list[str], verify: bool = False) -> None:
        """Every case reads: its arrays decode to the shape and dtype its record names, and none reads as
        zeros where its sha256 says otherwise (a missing chunk); with ``verify`` every array is also checked
        against its sha256. Reads each chunk once; hashing every array is the part left to ``verify``.

        Raises:
            DataError: naming the dataset and the cases at fault (the first few).
        """
        problems = []
        for case_id in case_ids:
            record = self.case(case_id)
            try:
                arrays = self.load(case_id, verify=verify)
            except DataError as exc:
                problems.append(str(exc).removeprefix(f"{self.directory}: "))
                continue
            expected = {"image": record.image_sha256, "label": record.label_sha256}
            for kind, array in zip(("image", "label"), arrays, strict=True):
                if tuple(array.shape) != tuple(record.shape) or array.dtype != STORED_DTYPE:
                    problems.append(
                        f"{kind} of case {case_id!r} is {array.dtype}{list(array.shape)}, "
                        f"the manifest says {np.dtype(STORED_DTYPE)}{list(record.shape)}"
                    )
                elif not verify and not array.any() and array_sha256(array) != expected[kind]:
                    # a missing chunk reads as zeros; only an array that really is all zeros may
                    problems.append(f"{kind} of case {case_id!r} reads as zeros: a chunk is missing")
        if problems:
            more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
            raise DataError(f"{self.directory}: {'; '.join(problems[:3])}{more}")

    def verify(self) -> list[str]:
        """Ids of every case whose arrays do not match their checksums."""
        bad = []
        for case in self.manifest.cases:
            try:
                self.load(case.id, verify=True)
            except DataError:
                bad.append(case.id)
        return bad

    def close(self) -> None:
        """Release the volume store."""
        self._store.close()

    def __enter__(self) -> PreparedDataset:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
