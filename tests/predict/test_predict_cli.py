"""``mscl predict`` end to end with a trained tiny study: layouts, grids, the table, failures and errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import mlflow
import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from mscl.cli.main import app
from mscl.metrics.registry import METRICS
from tests.predict.conftest import Study
from tests.predict.scans import write_scan

MODEL = "models:/blobs@champion"


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def predict(study: Study, source: Path, out: Path, *extra: str) -> tuple[int, str, str]:
    model = [] if "--model" in extra else ["--model", MODEL]
    return invoke("predict", *model, "--input", str(source), "--out", str(out),
                  "--tracking-uri", study.uri, "--quiet", *extra)  # fmt: skip


def table(out: Path) -> list[dict[str, str]]:
    with open(out / "predictions.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def bids_tree(root: Path) -> dict[str, nib.Nifti1Image]:
    """Three scans off the training grid; sub-01 has a lesion mask, sub-03 is a T2w."""
    (root / "derivatives" / "labels" / "sub-01" / "anat").mkdir(parents=True)
    label = root / "derivatives" / "labels" / "sub-01" / "anat" / "sub-01_FLAIR_mask.nii.gz"
    return {
        "sub-01_FLAIR": write_scan(root / "sub-01" / "anat" / "sub-01_FLAIR.nii.gz", "lps", 1, label),
        "sub-02_ses-1_FLAIR": write_scan(root / "sub-02" / "ses-1" / "anat" / "sub-02_ses-1_FLAIR.nii.gz",
                                         "anisotropic", 2),
        "sub-03_T2w": write_scan(root / "sub-03" / "anat" / "sub-03_T2w.nii.gz", "int16-scaled", 3),
    }  # fmt: skip


def test_bids_input_gives_derivatives_on_each_scans_grid(study: Study, tmp_path: Path) -> None:
    scans = bids_tree(tmp_path / "bids")
    stage1 = ["--model", study.parent_run_id, "--stage", "1"]  # trained on Big alone: FLAIR only
    code, _, stderr = predict(study, tmp_path / "bids", tmp_path / "out", *stage1)
    assert code == 0, stderr
    assert "not trained on T2w" in stderr
    derivatives = tmp_path / "out" / "derivatives" / "mscl"
    folders = {
        "sub-01_FLAIR": "sub-01/anat",
        "sub-02_ses-1_FLAIR": "sub-02/ses-1/anat",
        "sub-03_T2w": "sub-03/anat",
    }
    for stem, scan in scans.items():
        for kind in ("mask", "probseg"):
            written = nib.load(derivatives / folders[stem] / f"{stem}_desc-lesion_{kind}.nii.gz")
            assert written.shape == scan.shape
            assert np.allclose(written.affine, scan.affine)
            assert nib.aff2axcodes(written.affine) == nib.aff2axcodes(scan.affine)
    description = json.loads((derivatives / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative" and description["mscl"]["run_id"]
    rows = {row["subject"]: row for row in table(tmp_path / "out")}
    assert set(rows) == {"sub-01", "sub-02", "sub-03"}
    assert rows["sub-03"]["contrast"] == "T2w"
    for name in METRICS.names():  # scored where a label exists, empty elsewhere
        assert rows["sub-01"][name] != "" and rows["sub-02"][name] == ""
    mask = nib.load(derivatives / "sub-01/anat/sub-01_FLAIR_desc-lesion_mask.nii.gz").get_fdata()
    volume = mask.sum() * np.prod(scans["sub-01_FLAIR"].header.get_zooms()) / 1000
    assert float(rows["sub-01"]["lesion_volume_ml"]) == pytest.approx(volume)


def test_pyfunc_and_predict_give_the_same_mask(study: Study, tmp_path: Path) -> None:
    write_scan(tmp_path / "scan.nii.gz", "int16-scaled", 4)
    parent = ["--model", study.parent_run_id]  # its last stage: the registered model
    code, _, stderr = predict(study, tmp_path / "scan.nii.gz", tmp_path / "out", *parent, "--threshold", ".3")
    assert code == 0, stderr
    written = nib.load(tmp_path / "out" / "scan_desc-lesion_mask.nii.gz").get_fdata()
    mlflow.set_tracking_uri(study.uri)
    model = mlflow.pyfunc.load_model(MODEL)
    [mask] = model.predict({"image": str(tmp_path / "scan.nii.gz")}, params={"threshold": 0.3})
    np.testing.assert_array_equal(written, mask)
    [probseg] = model.predict({"image": str(tmp_path / "scan.nii.gz")}, params={"output": "probseg"})
    saved = nib.load(tmp_path / "out" / "scan_desc-lesion_probseg.nii.gz").get_fdata()
    np.testing.assert_allclose(saved, probseg, atol=1e-6)


def test_a_corrupt_scan_fails_alone_with_exit_1(study: Study, tmp_path: Path) -> None:
    folder = tmp_path / "scans"
    write_scan(folder / "good.nii.gz", "lps")
    write_scan(folder / "bad.nii.gz", "lps")
    data = (folder / "bad.nii.gz").read_bytes()
    (folder / "bad.nii.gz").write_bytes(data[: len(data) // 2])
    code, _, stderr = predict(study, folder, tmp_path / "out")
    assert code == 1
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "bad.nii.gz" in errors[0], stderr
    assert [row["subject"] for row in table(tmp_path / "out")] == ["good"]
    assert (tmp_path / "out" / "good_desc-lesion_mask.nii.gz").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "models:/nope@champion"], "models:/nope@champion not found"),
        (["--model", "0123456789abcdef0123456789abcdef"], "not found"),
        (["--model", MODEL, "--stage", "2"], "--stage applies to a run id"),
    ],
)
def test_unknown_models_exit_2_and_write_nothing(
    study: Study, tmp_path: Path, args: list[str], message: str
) -> None:
    write_scan(tmp_path / "scan.nii.gz", "lps")
    code, _, stderr = invoke("predict", *args, "--input", str(tmp_path / "scan.nii.gz"), "--out",
                             str(tmp_path / "out"), "--tracking-uri", study.uri, "--quiet")  # fmt: skip
    assert code == 2
    assert stderr.strip().count("\n") == 0 and message in stderr, stderr
    assert not (tmp_path / "out").exists()


def test_a_missing_store_is_not_created(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    write_scan(tmp_path / "scan.nii.gz", "lps")
    code, _, stderr = invoke("predict", "--model", MODEL, "--input", "scan.nii.gz", "--out", "out", "--quiet")
    assert code == 2 and "no tracking database" in stderr, stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scan.nii.gz"]


def test_an_existing_output_folder_is_refused(study: Study, tmp_path: Path) -> None:
    write_scan(tmp_path / "scan.nii.gz", "lps")
    (tmp_path / "out").mkdir()
    code, _, stderr = predict(study, tmp_path / "scan.nii.gz", tmp_path / "out")
    assert code == 2 and "--overwrite" in stderr
