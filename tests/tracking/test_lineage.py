"""Lineage on parent and stage runs, read back through MlflowClient; the git probe; mlflow-run nesting."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import mlflow
import pytest
import torch
from mlflow.tracking import MlflowClient

from mscl.config import load_config
from mscl.data.dataset import PreparedDataset
from mscl.errors import TrackingError
from mscl.tracking.lineage import (
    PROJECT_RUN_ENV,
    CaseSet,
    InputCase,
    environment_paths,
    file_sha256,
    git_state,
    parse_requirements,
    pip_freeze,
    start_run_options,
)

if TYPE_CHECKING:
    from tests.tracking.conftest import LoggedStudy


def download(client: MlflowClient, run_id: str, path: str, tmp_path: Path) -> Path:
    return Path(client.download_artifacts(run_id, path, str(tmp_path)))


def test_parent_run_records_source_seeds_and_runtime(logged_study: LoggedStudy) -> None:
    tags = logged_study.parent.data.tags
    assert (tags["mscl.git_commit"], tags["mscl.git_dirty"]) == (logged_study.commit, "false")  # the probe's
    assert (tags["mscl.seed"], tags["mscl.order_seed"]) == ("0", "0")
    assert tags["mscl.torch_version"] == torch.__version__
    assert tags["mscl.device"] == "cpu"
    assert tags["mscl.deterministic_algorithms"] == "true"  # set by the stage loop before the first stage
    assert {"mscl.cudnn_deterministic", "mscl.cudnn_benchmark", "mscl.num_threads", "mscl.cuda"} <= set(tags)


def test_parent_run_records_the_environment(
    logged_study: LoggedStudy, lock_of_this_environment: Path, tmp_path: Path
) -> None:
    client, parent = logged_study.client, logged_study.parent
    freeze = download(client, parent.info.run_id, "environment/pip-freeze.txt", tmp_path).read_text()
    assert parse_requirements(freeze)["mlflow"] == mlflow.__version__
    lock = download(client, parent.info.run_id, "environment/lock.txt", tmp_path).read_text()
    assert lock == lock_of_this_environment.read_text()


FREEZE_AFTER_RAY = "import ray; from mscl.tracking.lineage import pip_freeze; print(pip_freeze())"
"""``import ray`` puts ``ray/thirdparty_files`` (its own colorama and psutil) on ``sys.path``."""


def test_in_process_freeze_lists_what_pip_freeze_lists() -> None:
    def isolated(*args: str) -> str:  # -I: the environment alone, not PYTHONPATH, the user site or the cwd
        return subprocess.run(
            [sys.executable, "-I", *args], capture_output=True, text=True, check=True
        ).stdout

    pip = parse_requirements(
        isolated("-m", "pip", "freeze", "--exclude-editable", "--disable-pip-version-check")
    )
    ours = parse_requirements(isolated("-c", FREEZE_AFTER_RAY))
    differing = {name: (ours.get(name), pip.get(name)) for name in ours.keys() ^ pip.keys()} | {
        name: (ours[name], pip[name]) for name in ours.keys() & pip.keys() if ours[name] != pip[name]
    }
    assert not differing, f"(ours, pip's) by package: {differing}"
    assert "mscl" not in ours  # editable: the source is recorded by its git commit
    assert list(ours) == sorted(ours)


def test_folders_vendored_inside_site_packages_are_no_distributions(tmp_path: Path) -> None:
    site_dir, elsewhere = tmp_path / "site-packages", tmp_path / "pythonpath"
    for folder in (site_dir / "pkg" / "thirdparty_files", elsewhere):
        info = folder / f"vendored_{folder.name}-1.0.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: vendored-{folder.name}\nVersion: 1.0\n")
    path = [str(site_dir / "pkg" / "thirdparty_files"), str(site_dir), str(elsewhere)]
    assert environment_paths(path, [str(site_dir)]) == [str(site_dir), str(elsewhere)]
    with_site = [p for p in path if p != str(site_dir / "pkg" / "thirdparty_files")]
    freeze = parse_requirements(pip_freeze(path))  # the real site dirs: tmp_path is not inside them
    assert {"vendored-thirdparty-files", "vendored-pythonpath"} <= set(freeze)
    assert "vendored-thirdparty-files" not in parse_requirements(pip_freeze(with_site))


def test_dataset_inputs_on_parent_and_stages(
    logged_study: LoggedStudy, blob_dataset: Path, tmp_path: Path
) -> None:
    client, parent, stages = logged_study.client, logged_study.parent, logged_study.stages
    [whole] = client.get_run(parent.info.run_id).inputs.dataset_inputs
    with PreparedDataset(blob_dataset) as dataset:
        manifest = dataset.manifest
    assert [t.value for t in whole.tags] == ["dataset"]
    assert json.loads(whole.dataset.profile)["sha256"] == parent.data.tags["mscl.dataset_digest"]
    memory: list[dict] = []  # the memory a stage trains with is the one the previous stage left
    for stage in stages:
        [used] = client.get_run(stage.info.run_id).inputs.dataset_inputs
        profile = json.loads(used.dataset.profile)
        own = [InputCase(c.id, c.image_sha256, c.label_sha256, "dataset") for c in manifest.cases_of(
            center=stage.data.tags["mscl.center"], split="train")]  # fmt: skip
        replayed = [InputCase(s["key"], s["image_sha256"], s["label_sha256"], "memory") for s in memory]
        expected = CaseSet("x", "x", manifest, tuple(own + replayed)).digest()
        assert profile == {"cases": len(own) + len(memory), "memory_cases": len(memory), "sha256": expected}
        assert stage.data.tags["mscl.inputs_digest"] == expected
        assert used.dataset.name == f"blobs/{stage.info.run_name}"
        manifest_path = download(client, stage.info.run_id, "memory_manifest.json", tmp_path)
        memory = json.loads(manifest_path.read_text())["samples"]
    assert profile["memory_cases"] > 0


def test_checkpoint_sha256_is_tagged_when_logged(logged_study: LoggedStudy, tmp_path: Path) -> None:
    client = logged_study.client
    for stage in logged_study.stages:
        path = download(client, stage.info.run_id, "checkpoint/model.pt", tmp_path / stage.info.run_id)
        assert stage.data.tags["mscl.checkpoint_sha256"] == file_sha256(path)


def git(folder: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(folder), *args],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip


def test_git_probe_commit_dirty_and_untracked(tmp_path: Path) -> None:
    package = tmp_path / "repo" / "pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("x = 1\n")
    git(tmp_path / "repo", "init", "-q")
    git(tmp_path / "repo", "add", ".")
    git(tmp_path / "repo", "commit", "-q", "-m", "init")
    clean = git_state(package)
    assert (clean.commit, clean.dirty) == (git(package, "rev-parse", "HEAD"), "false")
    (package / "__init__.py").write_text("x = 2\n")
    assert git_state(package).dirty == "true"
    (package / "__init__.py").write_text("x = 1\n")
    (tmp_path / "repo" / "notes.txt").write_text("untracked\n")
    assert git_state(package).dirty == "true"
    installed = tmp_path / "repo" / "site" / "pkg"
    installed.mkdir(parents=True)
    (installed / "__init__.py").write_text("")
    assert git_state(installed).commit == "unknown"  # inside the checkout but not tracked: an install
    assert git_state(tmp_path).commit == "unknown"


def test_project_run_id_moves_from_mlflow_run_id(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = load_config("tiny")
    monkeypatch.setenv(PROJECT_RUN_ENV, "")  # restored (removed) after the test, like MLFLOW_RUN_ID
    monkeypatch.setenv("MLFLOW_RUN_ID", "p" * 32)
    expected = {"parent_run_id": "p" * 32, "tags": {"mscl.project_run": "p" * 32}}
    assert start_run_options(cfg) == expected
    assert start_run_options(cfg) == expected  # every seed's parent run, after MLFLOW_RUN_ID is gone
    assert "MLFLOW_RUN_ID" not in os.environ and os.environ[PROJECT_RUN_ENV] == "p" * 32
    assert start_run_options(cfg, resume=True) == {}


def test_system_metrics_need_psutil(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    monkeypatch.setenv(PROJECT_RUN_ENV, "")
    monkeypatch.setenv("MLFLOW_RUN_ID", "")
    cfg = load_config("tiny", overrides=["tracking.system_metrics=true"])
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(TrackingError, match="psutil"):
        start_run_options(cfg)
