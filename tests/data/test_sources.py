"""Discovery of BIDS trees and CSV manifests, and the header checks done up front."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest

from mscl.config import DataConfig
from mscl.data.sources import SourceCase, check_pair, discover, discover_bids, discover_manifest
from mscl.errors import DataError


def test_bids_discovery_finds_sessions_contrasts_masks_and_centers(bids_root: Path) -> None:
    cases = discover_bids(bids_root, DataConfig())
    assert [(c.subject, c.contrast, c.center) for c in cases] == [
        ("sub-01", "FLAIR", "A"),
        ("sub-01", "T2w", "A"),
        ("sub-02", "FLAIR", "A"),
        ("sub-03", "T2w", "B"),
        ("sub-04", "T2w", "B"),
    ]
    session = cases[2]
    assert session.image == bids_root / "sub-02/ses-01/anat/sub-02_ses-01_FLAIR.nii.gz"
    assert (
        session.label == bids_root / "derivatives/labels/sub-02/ses-01/anat/sub-02_ses-01_FLAIR_mask.nii.gz"
    )


def test_bids_label_dir_suffix_and_center_column_come_from_config(bids_root: Path) -> None:
    shutil.move(bids_root / "derivatives" / "labels", bids_root / "derivatives" / "lesions")
    for mask in (bids_root / "derivatives" / "lesions").rglob("*_mask.nii*"):
        mask.rename(mask.with_name(mask.name.replace("_mask", "_seg")))
    tsv = bids_root / "participants.tsv"
    tsv.write_text(tsv.read_text().replace("site", "hospital"))
    data = DataConfig(labels_dir="lesions", label_suffix="_seg", center_column="hospital")
    cases = discover_bids(bids_root, data)
    assert len(cases) == 5
    assert [case.label.name for case in cases][2:] == [
        "sub-02_ses-01_FLAIR_seg.nii.gz",
        "sub-03_T2w_seg.nii",
        "sub-04_acq-3d_T2w_seg.nii.gz",
    ]


def test_bids_subject_with_two_sessions_of_one_contrast_is_refused(bids_root: Path, write_pair) -> None:
    write_pair(bids_root / "sub-02/ses-02/anat", "sub-02_ses-02_FLAIR")
    with pytest.raises(DataError, match="sub-02 has several FLAIR images"):
        discover_bids(bids_root, DataConfig())


@pytest.mark.parametrize(
    ("tsv", "message"),
    [
        ("participant_id\tsite\nsub-01\tA\nsub-02\tA\nsub-03\tB\n", "no 'site' value for sub-04"),
        ("participant_id\tsite\nsub-01\tA\nsub-02\tA\nsub-03\tB\nsub-04\t\n", "no 'site' value for sub-04"),
        ("participant_id\tcenter\nsub-01\tA\n", "missing column"),
    ],
)
def test_bids_center_problems_name_the_subject(bids_root: Path, tsv: str, message: str) -> None:
    (bids_root / "participants.tsv").write_text(tsv)
    with pytest.raises(DataError, match=message):
        discover_bids(bids_root, DataConfig())


def test_bids_missing_mask_and_participants_are_refused(bids_root: Path) -> None:
    (bids_root / "derivatives/labels/sub-04/anat/sub-04_acq-3d_T2w_mask.nii.gz").unlink()
    with pytest.raises(DataError, match=r"sub-04_acq-3d_T2w_mask\.nii\.gz: lesion mask of sub-04_acq-3d_T2w"):
        discover_bids(bids_root, DataConfig())
    (bids_root / "participants.tsv").unlink()
    with pytest.raises(DataError, match=r"participants\.tsv: file not found"):
        discover_bids(bids_root, DataConfig())


def test_manifest_resolves_relative_paths_and_sorts(manifest_csv: Path) -> None:
    rows = list(csv.DictReader(manifest_csv.open()))
    with open(manifest_csv, "w", newline="") as handle:  # reversed listing, same result
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(reversed(rows))
    cases = discover_manifest(manifest_csv)
    assert [(c.subject, c.contrast, c.center) for c in cases] == [
        ("s1", "FLAIR", "X"),
        ("s1", "T2w", "X"),
        ("s2", "FLAIR", "X"),
        ("s3", "FLAIR", "Y"),
        ("s4", "FLAIR", "Y"),
    ]
    assert cases[0].image == manifest_csv.parent / "images" / "s1_FLAIR.nii.gz"
    assert cases[0].image.is_file()


@pytest.mark.parametrize(
    ("row", "change", "message"),
    [
        (0, {"center": ""}, "line 2: empty 'center'"),
        (0, {"label": " "}, "line 2: empty 'label'"),
        (1, {"center": "Y"}, "line 3: subject 's1' listed under two centers"),
        (1, {"contrast": "FLAIR"}, "line 3: duplicate FLAIR image for subject 's1'"),
    ],
)
def test_manifest_field_problems_name_line_and_field(
    manifest_csv: Path, write_csv, row: int, change: dict[str, str], message: str
) -> None:
    rows = list(csv.DictReader(manifest_csv.open()))
    rows[row] = {**rows[row], **change}
    write_csv(manifest_csv, rows)
    with pytest.raises(DataError, match=message):
        discover_manifest(manifest_csv)


def test_manifest_missing_columns_and_file(tmp_path: Path) -> None:
    path = tmp_path / "cases.csv"
    path.write_text("subject,image\n")
    with pytest.raises(DataError, match="missing column"):
        discover_manifest(path)
    with pytest.raises(DataError, match="file not found"):
        discover_manifest(tmp_path / "absent.csv")


def test_discover_refuses_ids_unsafe_for_a_store(manifest_csv: Path, write_csv, data_config) -> None:
    rows = list(csv.DictReader(manifest_csv.open()))
    rows[0]["subject"] = rows[1]["subject"] = "s1/evil"
    write_csv(manifest_csv, rows)
    with pytest.raises(DataError, match="subject 's1/evil' may only hold"):
        discover("manifest", manifest_csv, data_config)


def test_check_pair_catches_shape_and_affine_mismatch(tmp_path: Path, write_nifti) -> None:
    volume = np.zeros((12, 14, 10), np.float32)
    image = write_nifti(tmp_path / "img.nii.gz", volume)
    check_pair(image, write_nifti(tmp_path / "ok.nii.gz", volume, np.diag([1, 1, 1, 1.0]) + 1e-5))
    with pytest.raises(DataError, match=r"small\.nii\.gz: shape \(12, 14, 9\) differs"):
        check_pair(image, write_nifti(tmp_path / "small.nii.gz", volume[..., :9]))
    shifted = np.eye(4)
    shifted[0, 3] = 0.5
    with pytest.raises(DataError, match=r"shifted\.nii\.gz: affine differs"):
        check_pair(image, write_nifti(tmp_path / "shifted.nii.gz", volume, shifted))


def test_check_pair_catches_missing_garbage_and_4d_files(tmp_path: Path, write_nifti) -> None:
    image = write_nifti(tmp_path / "img.nii.gz", np.zeros((4, 4, 4), np.float32))
    with pytest.raises(DataError, match=r"absent\.nii\.gz: file not found"):
        check_pair(image, tmp_path / "absent.nii.gz")
    garbage = tmp_path / "garbage.nii.gz"
    garbage.write_bytes(b"not a nifti file at all")
    with pytest.raises(DataError, match=r"garbage\.nii\.gz: cannot read NIfTI header"):
        check_pair(garbage, image)
    series = write_nifti(tmp_path / "series.nii.gz", np.zeros((4, 4, 4, 2), np.float32))
    with pytest.raises(DataError, match="expected a 3D volume"):
        check_pair(series, image)


def test_source_cases_sort_by_subject_then_contrast() -> None:
    a = SourceCase("s2", "FLAIR", "X", Path("a"), Path("b"))
    b = SourceCase("s1", "T2w", "Y", Path("a"), Path("b"))
    c = SourceCase("s1", "FLAIR", "Y", Path("a"), Path("b"))
    assert sorted([a, b, c]) == [c, b, a]
