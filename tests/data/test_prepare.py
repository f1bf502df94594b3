"""End to end: real sources (BIDS and CSV) to a dataset directory, in both store formats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mscl.config import DataConfig
from mscl.data.dataset import PreparedDataset
from mscl.data.prepare import prepare_real
from mscl.errors import DataError


@pytest.mark.parametrize("fmt", ["zarr", "hdf5"])
def test_bids_tree_round_trips(tmp_path: Path, bids_root: Path, data_config: DataConfig, fmt: str) -> None:
    data = data_config.model_copy(update={"format": fmt})
    manifest = prepare_real("bids", bids_root, tmp_path / "ds", data, quiet=True)
    assert manifest.source.kind == "bids"
    assert manifest.source.path == str(bids_root.resolve())
    assert [c.id for c in manifest.cases] == [
        "sub-01_FLAIR",
        "sub-01_T2w",
        "sub-02_FLAIR",
        "sub-03_T2w",
        "sub-04_T2w",
    ]
    assert [(c.name, c.contrasts, c.subjects) for c in manifest.centers] == [
        ("A", ["FLAIR", "T2w"], 2),
        ("B", ["T2w"], 2),
    ]
    by_id = {c.id: c for c in manifest.cases}
    assert by_id["sub-01_FLAIR"].split == by_id["sub-01_T2w"].split
    assert by_id["sub-02_FLAIR"].source_label.endswith("sub-02_ses-01_FLAIR_mask.nii.gz")
    with PreparedDataset(tmp_path / "ds") as dataset:
        assert dataset.manifest.store == fmt
        assert dataset.verify() == []
        image, label = dataset.load("sub-03_T2w")
    assert image.shape == label.shape == by_id["sub-03_T2w"].shape
    assert image.dtype == np.float16
    assert 0 < label.max() <= 1 and by_id["sub-03_T2w"].lesion_ml > 0


def test_csv_manifest_with_two_workers_matches_one(tmp_path: Path, manifest_csv: Path, data_config) -> None:
    serial = prepare_real("manifest", manifest_csv, tmp_path / "one", data_config, quiet=True)
    parallel = prepare_real(
        "manifest", manifest_csv, tmp_path / "two", data_config.model_copy(update={"workers": 2}), quiet=True
    )
    assert [c.model_dump() for c in serial.cases] == [c.model_dump() for c in parallel.cases]
    assert serial.digest() == parallel.digest()
    assert {c.split for c in serial.cases} == {"train", "test"}


def test_worker_errors_arrive_as_the_same_data_error(tmp_path: Path, manifest_csv: Path, data_config) -> None:
    image = manifest_csv.parent / "images" / "s3_FLAIR.nii.gz"
    image.write_bytes(image.read_bytes()[:400])
    with pytest.raises(DataError, match=r"s3_FLAIR\.nii\.gz: cannot read voxels") as caught:
        prepare_real(
            "manifest",
            manifest_csv,
            tmp_path / "ds",
            data_config.model_copy(update={"workers": 2}),
            quiet=True,
        )
    assert "\n" not in str(caught.value)
    assert list(tmp_path.iterdir()) == [manifest_csv.parent]


def test_existing_output_is_refused_before_any_work(tmp_path: Path, data_config) -> None:
    (tmp_path / "ds").mkdir()
    with pytest.raises(DataError, match="output directory exists"):
        prepare_real("manifest", tmp_path / "absent.csv", tmp_path / "ds", data_config, quiet=True)
