"""Reading a dataset directory back: manifest, arrays, checksum verification."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import zarr

from mscl.data.dataset import PreparedDataset
from mscl.data.store import STORE_NAMES
from mscl.errors import DataError

from .volumes import build_tiny, tiny_case


def tamper(directory: Path, fmt: str, key: str) -> None:
    """Change one voxel of a stored array behind the manifest's back."""
    path = directory / STORE_NAMES[fmt]
    if fmt == "zarr":
        zarr.open_group(str(path), mode="r+")[key][0, 0, 0] = 42
    else:
        with h5py.File(path, "r+") as handle:
            handle[key][0, 0, 0] = 42


@pytest.mark.parametrize("fmt", ["zarr", "hdf5"])
def test_verify_flags_a_tampered_array(tmp_path: Path, fmt: str) -> None:
    build_tiny(tmp_path / "ds", fmt)
    with PreparedDataset(tmp_path / "ds") as dataset:
        assert dataset.verify() == []
    tamper(tmp_path / "ds", fmt, "labels/B1_FLAIR")
    with PreparedDataset(tmp_path / "ds") as dataset:
        assert dataset.verify() == ["B1_FLAIR"]
        with pytest.raises(DataError, match="label of case 'B1_FLAIR' fails its sha256 check"):
            dataset.load("B1_FLAIR")
        image, _ = dataset.load("B1_FLAIR", verify=False)
        assert image.dtype == np.float16


@pytest.mark.parametrize("fmt", ["zarr", "hdf5"])
def test_loaded_arrays_equal_the_written_case(tmp_path: Path, fmt: str) -> None:
    manifest = build_tiny(tmp_path / "ds", fmt)
    expected = tiny_case("A1", "A", seed=1)
    with PreparedDataset(tmp_path / "ds") as dataset:
        assert dataset.manifest == manifest
        image, label = dataset.load("A1_FLAIR")
        np.testing.assert_array_equal(image, expected.image.astype(np.float16))
        np.testing.assert_array_equal(label, expected.label.astype(np.float16))
        with pytest.raises(DataError, match="no case 'nope'"):
            dataset.case("nope")


def test_opening_what_is_not_a_dataset_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="dataset directory not found"):
        PreparedDataset(tmp_path / "absent")
    with pytest.raises(DataError, match=r"not a prepared dataset \(no dataset.json\)"):
        PreparedDataset(tmp_path)
    (tmp_path / "dataset.json").write_text('{"format_version": 1}')
    with pytest.raises(DataError, match="invalid manifest at name"):
        PreparedDataset(tmp_path)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id", "/tmp/elsewhere/x"),
        ("id", "../../x"),
        ("subject", "a/b"),
        ("center", ".hidden"),
        ("contrast", ""),
    ],
)
def test_identifiers_that_become_paths_are_checked_when_a_manifest_is_read(
    tmp_path: Path, field: str, value: str
) -> None:
    """Checked on read, not only when prepare writes them: a crafted dataset.json is refused."""
    import json

    build_tiny(tmp_path / "ds")
    path = tmp_path / "ds" / "dataset.json"
    manifest = json.loads(path.read_text())
    manifest["cases"][1][field] = value
    path.write_text(json.dumps(manifest))
    with pytest.raises(DataError, match=rf"invalid manifest at cases\.1\.{field}: .* may only hold letters"):
        PreparedDataset(tmp_path / "ds")


@pytest.mark.parametrize("fmt", ["zarr", "hdf5"])
def test_check_readable_names_every_case_that_does_not_read(tmp_path: Path, fmt: str) -> None:
    build_tiny(tmp_path / "ds", fmt)
    with PreparedDataset(tmp_path / "ds") as dataset:
        ids = [case.id for case in dataset.manifest.cases]
        dataset.check_readable(ids)
    tamper(tmp_path / "ds", fmt, "labels/B1_FLAIR")  # still reads: only the sha256 tells
    with PreparedDataset(tmp_path / "ds") as dataset:
        dataset.check_readable(ids)
        with pytest.raises(DataError, match="label of case 'B1_FLAIR' fails its sha256 check"):
            dataset.check_readable(ids, verify=True)
    if fmt == "zarr":
        for case in ("A0_FLAIR", "B2_FLAIR"):
            [chunk] = [p for p in (tmp_path / "ds" / "volumes.zarr" / "images" / case).rglob("c/*/*/*")]
            chunk.write_bytes(chunk.read_bytes()[:7])
        with PreparedDataset(tmp_path / "ds") as dataset, pytest.raises(DataError) as caught:
            dataset.check_readable(ids)
        assert "images/A0_FLAIR cannot be read" in str(caught.value)
        assert "images/B2_FLAIR cannot be read" in str(caught.value)
