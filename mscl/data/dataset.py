"""Read a prepared dataset directory: manifest plus volume store, with checksum verification."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

import numpy as np

from mscl.data.manifest import CaseRecord, DatasetManifest
from mscl.data.store import VolumeStore, array_sha256, open_store
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
