"""``mscl train`` (and the commands sharing its configuration): every user error is one line and exit code 2,
found before the first MLflow run is created; what it writes is never group- or world-writable."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from mscl.cli.main import app
from mscl.data.manifest import DatasetManifest
from mscl.memory_backends.base import SampleMeta
from mscl.memory_backends.registry import open_backend
from mscl.testing.data import build_blob_dataset

TINY = ["--preset", "tiny", "--set", "model.channels=[2,4,8]", "--set", "train.patch_size=[8,8,8]"]


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stderr.strip()


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if "mlflow.store.db.utils" not in line]  # MLflow's logging
    assert len(lines) == 1, stderr
    return lines[0]


def train(data: Path, tmp_path: Path, *extra: str) -> tuple[int, str]:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    return invoke(
        "train", "--data", str(data), *TINY, "--epochs", "1", "--tracking-uri", uri, "--quiet",
        "--set", f"train.checkpoint_dir={tmp_path}/checkpoints", *extra,
    )  # fmt: skip


def nothing_tracked(tmp_path: Path) -> bool:
    """A user error found before the first run leaves no tracking store (not even an empty one)."""
    return not (tmp_path / "mlflow.db").exists()


def broken_copy(blob_dataset: Path, tmp_path: Path) -> tuple[Path, str]:
    """A copy of the blob dataset and the id of its last center's last training case."""
    copy = tmp_path / "dataset"
    shutil.copytree(blob_dataset, copy)
    manifest = DatasetManifest.read(copy)
    last = manifest.center_names()[-1]
    return copy, manifest.cases_of(last, "train")[-1].id


# --- a configuration section replaced by a scalar, invalid YAML in an override ----------------------------


@pytest.mark.parametrize("command", ["train", "config show", "prepare"])
def test_a_section_replaced_by_a_scalar_is_refused(command: str, blob_dataset: Path, tmp_path: Path) -> None:
    """``--set train=3`` once trained with the built-in defaults (150 epochs, 64^3 patches)."""
    extra = ["--set", "train=3"]
    if command == "train":
        code, stderr = train(blob_dataset, tmp_path, *extra)
    elif command == "prepare":
        code, stderr = invoke(
            "prepare", "--synthetic", "--out", str(tmp_path / "data"), "--preset", "tiny", *extra
        )
    else:
        code, stderr = invoke("config", "show", "--preset", "tiny", *extra)
    assert code == 2
    assert one_line(stderr) == "error: override 'train=3': train: must be a mapping of settings, not int"
    assert nothing_tracked(tmp_path)


@pytest.mark.parametrize("command", ["train", "train --resume", "config show", "prepare", "bench"])
def test_invalid_yaml_in_an_override_is_one_line(command: str, blob_dataset: Path, tmp_path: Path) -> None:
    extra = ["--set", "train.epochs=["]
    args = {
        "train": ["train", "--data", str(blob_dataset), *extra],
        "train --resume": ["train", "--resume", "0" * 32, "--data", str(blob_dataset), *extra],
        "config show": ["config", "show", *extra],
        "prepare": ["prepare", "--synthetic", "--out", str(tmp_path / "data"), *extra],
        "bench": ["bench", "--preset", "tiny", *extra],
    }[command]
    if command == "train --resume":  # the run's logged configuration is read first: give it a store
        MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").search_experiments()
        args += ["--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db"]
    code, stderr = invoke(*args)
    assert code == 2
    line = one_line(stderr)
    if command == "train --resume":
        assert line == f"error: run '{'0' * 32}' not found in sqlite:///{tmp_path}/mlflow.db"
    else:
        assert line.startswith("error: override 'train.epochs=[': the value is not valid YAML")


def test_resume_refuses_seeds_before_anything_else(blob_dataset: Path) -> None:
    code, stderr = invoke("train", "--resume", "0" * 32, "--data", str(blob_dataset), "--seeds", "3")
    assert code == 2
    assert one_line(stderr) == "error: --seeds cannot be used with --resume: a resumed run has its one seed"


# --- user errors found before the first run: data, memory, device, tracking ------------------------------


@pytest.mark.parametrize("damage", ["truncated chunk", "truncated zarr.json", "missing chunk"])
def test_an_unreadable_case_of_the_last_center_fails_before_any_run(
    damage: str, blob_dataset: Path, tmp_path: Path
) -> None:
    """The study would have trained two stages before meeting it: nothing is created; the line names it."""
    data, case = broken_copy(blob_dataset, tmp_path)
    array = data / "volumes.zarr" / "images" / case
    chunks = [p for p in array.rglob("*") if p.is_file() and p.name != "zarr.json"]
    if damage == "truncated chunk":
        chunks[0].write_bytes(chunks[0].read_bytes()[:10])
    elif damage == "missing chunk":
        chunks[0].unlink()
    else:
        (array / "zarr.json").write_bytes((array / "zarr.json").read_bytes()[:20])
    code, stderr = train(data, tmp_path)
    assert code == 2
    line = one_line(stderr)
    assert line.startswith(f"error: {data}") and case in line
    assert nothing_tracked(tmp_path)


def test_a_changed_volume_is_found_before_any_run_with_verify_data(
    blob_dataset: Path, tmp_path: Path
) -> None:
    data, case = broken_copy(blob_dataset, tmp_path)
    images = zarr.open_group(str(data / "volumes.zarr"), mode="r+")["images"]
    images[case][0, 0, 0] = images[case][0, 0, 0] + 1.0  # still reads: only its sha256 tells
    code, stderr = train(data, tmp_path, "--verify-data")
    assert code == 2
    assert one_line(stderr) == f"error: {data}: image of case {case!r} fails its sha256 check"
    assert nothing_tracked(tmp_path)


def test_memory_path_under_a_regular_file(blob_dataset: Path, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    memory = tmp_path / "file" / "memory"
    code, stderr = train(blob_dataset, tmp_path, "--memory-backend", "hdf5", "--memory-path", str(memory))
    assert code == 2
    assert (
        one_line(stderr)
        == f"error: memory.path {memory}: lies under the regular file {tmp_path / 'file'}, not a folder"
    )
    assert nothing_tracked(tmp_path)


def test_a_truncated_zarr_json_of_the_memory_root(blob_dataset: Path, tmp_path: Path) -> None:
    memory = tmp_path / "memory"
    memory.mkdir()
    store = memory / "replay-seed0.zarr"  # the store an earlier replay study of seed 0 left
    with open_backend("zarr", store) as backend:
        image = np.zeros((4, 4, 4), np.float16)
        backend.put(
            "Big00_FLAIR",
            image,
            image,
            SampleMeta(center="Big", subject="Big00", contrast="FLAIR", lesion_voxels=0),
        )
    (store / "zarr.json").write_bytes((store / "zarr.json").read_bytes()[:15])
    args = ["--strategy", "replay", "--memory-backend", "zarr", "--memory-path", str(memory)]
    code, stderr = train(blob_dataset, tmp_path, *args)
    assert code == 2
    assert one_line(stderr).startswith(f"error: {store}: the store's zarr.json is unreadable")
    assert nothing_tracked(tmp_path)
    code, stderr = invoke("memory", "inspect", str(store), "--backend", "zarr")
    assert code == 2
    assert one_line(stderr).startswith(f"error: {store}: the store's zarr.json is unreadable")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_creates_no_run(blob_dataset: Path, tmp_path: Path) -> None:
    code, stderr = train(blob_dataset, tmp_path, "--device", "cuda")
    assert code == 2
    assert (
        one_line(stderr) == "error: train.device: 'cuda' requested but CUDA is not available on this machine"
    )
    assert nothing_tracked(tmp_path)


def test_a_tracking_uri_of_no_store_and_an_empty_experiment_are_named(
    blob_dataset: Path, tmp_path: Path
) -> None:
    code, stderr = invoke("train", "--data", str(blob_dataset), *TINY, "--tracking-uri", "foo://bar")
    assert code == 2
    assert one_line(stderr) == (
        "error: tracking URI 'foo://bar': MLflow has no tracking store for the scheme 'foo'; "
        "use sqlite:///PATH or http(s)://HOST:PORT"
    )
    code, stderr = train(blob_dataset, tmp_path, "--experiment", "")
    assert code == 2
    assert one_line(stderr) == "error: preset tiny: tracking.experiment: must not be empty"


# --- file modes -----------------------------------------------------------------------------------------


def shared_writable(root: Path) -> list[str]:
    """Files and folders under ``root`` that the group or the world may write, or the owner may not."""
    found = []
    for path in [root, *root.rglob("*")]:
        mode = path.lstat().st_mode
        if not stat.S_ISLNK(mode) and (mode & 0o022 or not mode & stat.S_IWUSR):
            found.append(f"{path.relative_to(root)} {stat.filemode(mode)}")
    return found


@pytest.mark.slow
def test_nothing_written_is_group_or_world_writable_under_umask_000(umask_000: None, tmp_path: Path) -> None:
    build_blob_dataset(tmp_path / "data")  # the dataset writer of ``mscl prepare``, here through the API
    code, stderr = train(
        tmp_path / "data", tmp_path, "--strategy", "replay", "--memory-backend", "hdf5",
        "--memory-path", str(tmp_path / "memory"), "--set", "model.channels=[2,4]",
    )  # fmt: skip
    assert code == 0, stderr
    assert os.umask(0) == 0  # the command restored the umask it found
    code, stderr = invoke("report", "-e", "mscl", "--out", str(tmp_path / "report"),
                          "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db")  # fmt: skip
    assert code == 0, stderr
    assert {"data", "mlflow.db", "mlartifacts", "memory", "report"} <= {p.name for p in tmp_path.iterdir()}
    assert shared_writable(tmp_path) == []


def test_a_log_gets_plain_progress_lines(blob_dataset: Path, tmp_path: Path) -> None:
    code, stderr = invoke(
        "train", "--data", str(blob_dataset), *TINY, "--epochs", "1", "--tracking-uri", f"sqlite:///{tmp_path}/m.db",
        "--set", f"train.checkpoint_dir={tmp_path}/checkpoints",
    )  # fmt: skip
    assert code == 0, stderr
    centers = DatasetManifest.read(blob_dataset).center_names()
    n = len(centers)
    assert f"stage 1/{n} {centers[0]} epoch 1/1 loss " in stderr  # CliRunner's stderr is not a terminal
    assert f"replay seed 0 stage {n}/{n} {centers[-1]} test dice " in stderr  # the tiny preset: replay
    assert "━" not in stderr  # no bars in a log
