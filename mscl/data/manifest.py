"""``dataset.json``: the pydantic model of a prepared dataset directory (stage contract 1)."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from mscl.errors import DataError

MANIFEST_NAME = "dataset.json"
FORMAT_VERSION: Literal[1] = 1
Split = Literal["train", "test"]


IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
"""What a case id, subject, center or contrast may be: each becomes part of a file or store path."""


def check_identifier(value: str) -> str:
    """``value`` if it is a safe identifier: letters, digits, ``.``, ``_`` and ``-``, not leading.

    Raises:
        ValueError: naming the value.
    """
    if not IDENTIFIER.fullmatch(value):
        raise ValueError(f"{value!r} may only hold letters, digits, '.', '_' and '-' (not leading)")
    return value


Identifier = Annotated[str, AfterValidator(check_identifier)]
"""A name that becomes a path (store keys, prediction files): checked whenever a manifest is read."""


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceRecord(_Record):
    """Where the cases came from: a BIDS tree, a CSV manifest, or the synthetic generator."""

    kind: Literal["bids", "manifest", "synthetic"]
    path: str | None = None
    generator: str | None = None
    generator_version: str | None = None
    seed: int | None = None
    profiles: dict[str, Any] | None = None


class PreprocessingRecord(_Record):
    """How every stored volume was produced."""

    orientation: str = "RAS"
    spacing: tuple[float, float, float]
    crop: str
    intensity_normalization: str
    soft_labels: bool = True
    dtype: str = "float16"


class SplitRecord(_Record):
    """The subject-level train/test split rule and its inputs."""

    test_fraction: float
    seed: int
    rule: str


class CenterRecord(_Record):
    """One hospital."""

    name: Identifier
    contrasts: list[Identifier]
    subjects: int


class CaseRecord(_Record):
    """One (subject, contrast) image-label pair."""

    id: Identifier
    subject: Identifier
    center: Identifier
    contrast: Identifier
    split: Split
    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    lesion_voxels: int = Field(ge=0, description="Voxels with label >= 0.5.")
    lesion_ml: float = Field(ge=0, description="Soft lesion volume in millilitres.")
    image_sha256: str
    label_sha256: str
    source_image: str | None = None
    source_label: str | None = None


class DatasetManifest(_Record):
    """The whole ``dataset.json``."""

    format_version: Literal[1] = FORMAT_VERSION
    name: str
    created: datetime = Field(default_factory=lambda: datetime.now(UTC))
    store: Literal["zarr", "hdf5"]
    source: SourceRecord
    preprocessing: PreprocessingRecord
    split: SplitRecord
    centers: list[CenterRecord]
    cases: list[CaseRecord]

    def center_names(self) -> list[str]:
        """Centers in manifest order."""
        return [center.name for center in self.centers]

    def cases_of(self, center: str | None = None, split: Split | None = None) -> list[CaseRecord]:
        """Cases filtered by center and split, in manifest order."""
        return [
            case
            for case in self.cases
            if (center is None or case.center == center) and (split is None or case.split == split)
        ]

    def digest(self) -> str:
        """sha256 over every case checksum, split and the preprocessing settings: the data's identity."""
        payload = {
            "preprocessing": self.preprocessing.model_dump(mode="json"),
            "cases": sorted((c.id, c.center, c.split, c.image_sha256, c.label_sha256) for c in self.cases),
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def write(self, directory: Path) -> Path:
        """Write ``dataset.json`` into ``directory``."""
        path = Path(directory) / MANIFEST_NAME
        path.write_text(self.model_dump_json(indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def read(cls, directory: Path) -> DatasetManifest:
        """Read ``dataset.json`` from a dataset directory, failing with one clear line."""
        path = Path(directory) / MANIFEST_NAME
        if not Path(directory).is_dir():
            raise DataError(f"{directory}: dataset directory not found")
        if not path.is_file():
            raise DataError(f"{directory}: not a prepared dataset (no {MANIFEST_NAME}); run `mscl prepare`")
        try:
            return cls.model_validate_json(path.read_text(encoding="utf-8"))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            message = str(first["msg"]).removeprefix("Value error, ")
            raise DataError(f"{path}: invalid manifest at {where}: {message}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"{path}: cannot read manifest ({exc})") from None
