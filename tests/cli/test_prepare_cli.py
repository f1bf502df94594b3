"""``mscl prepare`` on real data: success in both formats; each bad input: one line, exit 2, no output."""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from mscl.cli.main import app
from mscl.data.dataset import PreparedDataset

runner = CliRunner()
SHAPE = (12, 14, 10)
SUBJECTS = {"s1": "X", "s2": "X", "s3": "Y", "s4": "Y"}


def write_volume(path: Path, array: np.ndarray, affine: np.ndarray | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array.astype(np.float32), np.eye(4) if affine is None else affine), path)


def write_case(image: Path, label: Path, seed: int) -> None:
    """A bright noisy box with a soft lesion (0.5 rim, 1 core) inside it."""
    volume = np.zeros(SHAPE)
    volume[2:10, 2:12, 2:8] = 50 + np.random.default_rng(seed).random((8, 10, 6))
    mask = np.zeros(SHAPE)
    mask[4:8, 5:9, 3:7] = 0.5
    mask[5:7, 6:8, 4:6] = 1.0
    write_volume(image, volume)
    write_volume(label, mask)


def write_rows(path: Path, rows: list[dict[str, str]]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["subject", "center", "contrast", "image", "label"])
        writer.writeheader()
        writer.writerows(rows)


@pytest.fixture
def bids(tmp_path: Path) -> Path:
    """A BIDS tree with the same four subjects (``sub-s1`` ...), masks in derivatives/labels."""
    root = tmp_path / "bids"
    for seed, subject in enumerate(SUBJECTS):
        anat = Path(f"sub-{subject}") / "anat"
        write_case(
            root / anat / f"sub-{subject}_FLAIR.nii.gz",
            root / "derivatives" / "labels" / anat / f"sub-{subject}_FLAIR_mask.nii.gz",
            seed,
        )
    lines = [f"sub-{s}\t{c}" for s, c in SUBJECTS.items()]
    (root / "participants.tsv").write_text("participant_id\tsite\n" + "\n".join(lines) + "\n")
    return root


def prepare(*args: str | Path) -> object:
    return runner.invoke(app, ["prepare", "--spacing", "1", "-q", *map(str, args)])


def assert_one_line_error(result, out: Path, culprit: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and culprit in lines[0], lines[0]
    assert "Traceback" not in result.output
    assert not [p.name for p in out.parent.iterdir() if p.name.lstrip(".").startswith(out.name)]


@pytest.mark.parametrize("fmt", ["zarr", "hdf5"])
def test_csv_manifest_is_prepared_and_summarised(tmp_path: Path, raw: Path, fmt: str) -> None:
    out = tmp_path / "ds"
    result = runner.invoke(
        app,
        [
            "prepare",
            "--manifest",
            str(raw / "cases.csv"),
            "--out",
            str(out),
            "--spacing",
            "2",
            "--format",
            fmt,
        ],
    )
    assert result.exit_code == 0, result.output
    assert "ds: 4 cases" in result.stdout and "dataset written to" in result.stdout
    with PreparedDataset(out) as dataset:
        assert dataset.manifest.store == fmt
        assert dataset.manifest.preprocessing.spacing == (2.0, 2.0, 2.0)
        assert dataset.verify() == []
        assert dataset.manifest.center_names() == ["X", "Y"]


def test_bids_with_overwrite_and_config_flags(tmp_path: Path, bids: Path) -> None:
    out = tmp_path / "ds"
    assert prepare("--bids", bids, "--out", out).exit_code == 0
    result = prepare("--bids", bids, "--out", out, "--overwrite", "--split-seed", "5", "--workers", "2")
    assert result.exit_code == 0, result.output
    with PreparedDataset(out) as dataset:
        assert dataset.manifest.split.seed == 5
        assert [c.id for c in dataset.manifest.cases] == [f"sub-{s}_FLAIR" for s in SUBJECTS]


def _rewrite_rows(raw: Path, change: Callable[[list[dict[str, str]]], list[dict[str, str]]]) -> None:
    path = raw / "cases.csv"
    write_rows(path, change(list(csv.DictReader(path.open()))))


def _set_voxel(path: Path, value: float) -> None:
    image = nib.load(path)
    array = image.get_fdata()
    array[0, 0, 0] = value
    write_volume(path, array, image.affine)


def _shifted(path: Path) -> None:
    image = nib.load(path)
    affine = image.affine.copy()
    affine[0, 3] += 0.5
    write_volume(path, image.get_fdata(), affine)


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:400])


CSV_PROBLEMS: dict[str, tuple[Callable[[Path], None], str]] = {
    "missing image": (lambda raw: (raw / "s2.nii.gz").unlink(), "s2.nii.gz: file not found"),
    "missing label": (lambda raw: (raw / "s2_mask.nii.gz").unlink(), "s2_mask.nii.gz: file not found"),
    "unreadable": (
        lambda raw: (raw / "s2.nii.gz").write_bytes(b"junk"),
        "s2.nii.gz: cannot read NIfTI header",
    ),
    "truncated": (lambda raw: _truncate(raw / "s2.nii.gz"), "s2.nii.gz: cannot read voxels"),
    "shape": (
        lambda raw: write_volume(raw / "s2_mask.nii.gz", np.zeros((12, 14, 9))),
        "s2_mask.nii.gz: shape (12, 14, 9) differs",
    ),
    "affine": (lambda raw: _shifted(raw / "s2_mask.nii.gz"), "s2_mask.nii.gz: affine differs"),
    "nan": (lambda raw: _set_voxel(raw / "s2.nii.gz", np.nan), "s2.nii.gz: 1 NaN or infinite voxel"),
    "inf": (
        lambda raw: _set_voxel(raw / "s2_mask.nii.gz", -np.inf),
        "s2_mask.nii.gz: 1 NaN or infinite voxel",
    ),
    "label range": (lambda raw: _set_voxel(raw / "s2_mask.nii.gz", 2.0), "s2_mask.nii.gz: label values span"),
    "empty center": (
        lambda raw: _rewrite_rows(raw, lambda rows: [{**rows[0], "center": ""}, *rows[1:]]),
        "line 2: empty 'center'",
    ),
    "empty source": (lambda raw: _rewrite_rows(raw, lambda rows: []), "cases.csv: no cases found"),
    "single-subject center": (
        lambda raw: _rewrite_rows(raw, lambda rows: rows[:3]),
        "center 'Y' has 1 subject(s)",
    ),
}


@pytest.mark.parametrize("problem", CSV_PROBLEMS)
def test_bad_csv_input_is_one_line_and_leaves_nothing(tmp_path: Path, raw: Path, problem: str) -> None:
    breaker, culprit = CSV_PROBLEMS[problem]
    breaker(raw)
    out = tmp_path / "ds"
    assert_one_line_error(prepare("--manifest", raw / "cases.csv", "--out", out), out, culprit)


def test_error_in_a_worker_process_is_the_same_line(tmp_path: Path, raw: Path) -> None:
    _truncate(raw / "s3.nii.gz")
    out = tmp_path / "ds"
    result = prepare("--manifest", raw / "cases.csv", "--out", out, "--workers", "2")
    assert_one_line_error(result, out, "s3.nii.gz: cannot read voxels")


BIDS_PROBLEMS: dict[str, tuple[Callable[[Path], None], str]] = {
    "subject not in participants.tsv": (
        lambda root: (root / "participants.tsv").write_text("participant_id\tsite\nsub-s1\tX\n"),
        "participants.tsv: no 'site' value for sub-s2",
    ),
    "empty center cell": (
        lambda root: (root / "participants.tsv").write_text(
            "participant_id\tsite\nsub-s1\tX\nsub-s2\t\nsub-s3\tY\nsub-s4\tY\n"
        ),
        "participants.tsv: no 'site' value for sub-s2",
    ),
    "missing mask": (
        lambda root: (root / "derivatives/labels/sub-s3/anat/sub-s3_FLAIR_mask.nii.gz").unlink(),
        "sub-s3_FLAIR_mask.nii.gz: lesion mask of sub-s3_FLAIR.nii.gz not found",
    ),
    "two sessions": (
        lambda root: write_case(
            root / "sub-s1/ses-2/anat/sub-s1_ses-2_FLAIR.nii.gz",
            root / "derivatives/labels/sub-s1/ses-2/anat/sub-s1_ses-2_FLAIR_mask.nii.gz",
            9,
        ),
        "sub-s1 has several FLAIR images",
    ),
    "no images": (
        lambda root: [path.unlink() for path in root.glob("sub-*/anat/*.nii.gz")],
        "bids: no cases found",
    ),
}


@pytest.mark.parametrize("problem", BIDS_PROBLEMS)
def test_bad_bids_input_is_one_line_and_leaves_nothing(tmp_path: Path, bids: Path, problem: str) -> None:
    breaker, culprit = BIDS_PROBLEMS[problem]
    breaker(bids)
    out = tmp_path / "ds"
    assert_one_line_error(prepare("--bids", bids, "--out", out), out, culprit)


def test_existing_output_needs_overwrite(tmp_path: Path, raw: Path) -> None:
    out = tmp_path / "ds"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = prepare("--manifest", raw / "cases.csv", "--out", out)
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {out}: output directory exists; pass --overwrite to replace it"
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_missing_output_folder(tmp_path: Path, raw: Path) -> None:
    out = tmp_path / "absent" / "ds"
    assert_one_line_error(
        prepare("--manifest", raw / "cases.csv", "--out", out), tmp_path / "absent", "does not exist"
    )


def test_unwritable_output_folder(tmp_path: Path, raw: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    if os.geteuid() == 0:  # root ignores permission bits: report the folder as read-only instead
        access = os.access
        monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != locked and access(path, mode))
    out = locked / "ds"
    assert_one_line_error(prepare("--manifest", raw / "cases.csv", "--out", out), out, "not writable")


@pytest.mark.parametrize(
    ("args", "culprit"),
    [
        (["--spacing", "0"], "data.spacing"),
        (["--set", "data.normalization=minmax"], "data.normalization: must be one of"),
        (["--bids", "elsewhere"], "give exactly one source"),
    ],
)
def test_invalid_config_is_one_line(tmp_path: Path, raw: Path, args: list[str], culprit: str) -> None:
    out = tmp_path / "ds"
    result = runner.invoke(
        app, ["prepare", "-q", "--manifest", str(raw / "cases.csv"), "--out", str(out), *args]
    )
    assert_one_line_error(result, out, culprit)
