"""`mscl audit`: passes on a fresh run, and names the right check after each kind of tampering."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import pytest
import zarr
from typer.testing import CliRunner

from mscl.cli.main import app
from mscl.tracking import audit, lineage
from mscl.tracking.audit import CheckResult, audit_run

if TYPE_CHECKING:
    from tests.tracking.conftest import LoggedStudy

CHECKS = [
    "source",
    "config",
    "dataset",
    "packages vs lock",
    "packages vs environment",
    "checkpoints",
    "R matrix",
]


def artifact_file(study: LoggedStudy, run_id: str, path: str) -> Path:
    """Where a run's artifact lies on disk (the sqlite store keeps artifacts in local folders)."""
    uri = study.client.get_run(run_id).info.artifact_uri
    return Path(urlparse(uri).path) / path


@contextmanager
def tampered(path: Path, change: Callable[[bytes], bytes]) -> Iterator[None]:
    """Rewrite a file with ``change`` applied, restoring it afterwards (the run is shared by the tests)."""
    original = path.read_bytes()
    changed = change(original)
    assert changed != original
    path.write_bytes(changed)
    try:
        yield
    finally:
        path.write_bytes(original)


def flip_middle_byte(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]


def failed(results: list[CheckResult]) -> dict[str, str]:
    return {r.name: r.detail for r in results if not r.passed}


def test_audit_passes_on_a_fresh_run(logged_study: LoggedStudy) -> None:
    result = CliRunner().invoke(
        app,
        ["audit", logged_study.parent.info.run_id, "--tracking-uri", logged_study.uri],
        terminal_width=200,
    )
    assert result.exit_code == 0, result.output
    results = audit_run(logged_study.parent.info.run_id, tracking_uri=logged_study.uri)
    assert [r.name for r in results] == CHECKS
    assert failed(results) == {}
    assert f"commit {logged_study.commit[:12]}, clean tree" in result.output
    assert "3 checkpoints match their logged sha256" in result.output


def test_a_dirty_tree_fails_the_source_check(logged_study: LoggedStudy) -> None:
    run_id = logged_study.parent.info.run_id
    logged_study.client.set_tag(run_id, "mscl.git_dirty", "true")
    try:
        problems = failed(audit_run(run_id, tracking_uri=logged_study.uri))
    finally:
        logged_study.client.set_tag(run_id, "mscl.git_dirty", "false")
    assert problems == {"source": f"commit {logged_study.commit[:12]} with uncommitted changes "
                                  "(see environment/git-status.txt)"}  # fmt: skip


def test_a_changed_volume_fails_the_dataset_check(
    logged_study: LoggedStudy, blob_dataset: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "dataset"
    shutil.copytree(blob_dataset, copy)
    images = zarr.open_group(str(copy / "volumes.zarr"), mode="r+")["images"]
    case = sorted(images.array_keys())[0]
    images[case][0, 0, 0] = images[case][0, 0, 0] + 1.0
    run_id = logged_study.parent.info.run_id
    problems = failed(audit_run(run_id, data_dir=copy, tracking_uri=logged_study.uri))
    assert problems == {"dataset": f"1 case(s) in {copy} fail sha256: {case}"}


def test_an_edited_config_artifact_fails_the_config_check(logged_study: LoggedStudy) -> None:
    run_id = logged_study.parent.info.run_id
    config = artifact_file(logged_study, run_id, "config.yaml")
    with tampered(config, lambda text: text.replace(b"\n  epochs: 1\n", b"\n  epochs: 5\n")):
        problems = failed(audit_run(run_id, tracking_uri=logged_study.uri))
    assert problems == {
        "config": "config.yaml does not match its logged sha256 (mscl.config_sha256): the file is corrupt or "
        "was changed; 1 param(s) differ: train.epochs (config.yaml 5, params 1)"
    }


def test_a_changed_checkpoint_fails_the_checkpoint_check(logged_study: LoggedStudy) -> None:
    stage = logged_study.stages[1]
    path = artifact_file(logged_study, stage.info.run_id, "checkpoint/model.pt")
    with tampered(path, flip_middle_byte):
        problems = failed(audit_run(logged_study.parent.info.run_id, tracking_uri=logged_study.uri))
    assert problems == {
        "checkpoints": f"1 checkpoint(s) fail: {stage.info.run_name}: sha256 differs from the logged one"
    }


def test_an_edited_r_matrix_fails_the_r_matrix_check(logged_study: LoggedStudy) -> None:
    run_id = logged_study.parent.info.run_id
    path = artifact_file(logged_study, run_id, "r_matrix.json")

    def change(metric: str) -> Callable[[bytes], bytes]:
        def edit(text: bytes) -> bytes:
            rmatrix = json.loads(text)
            rmatrix["metrics"][metric]["matrix"][0][0] = 0.123456
            return json.dumps(rmatrix).encode()

        return edit

    for metric in ("dice", "ndsc"):  # every metric's matrix is checked, not only the headline
        with tampered(path, change(metric)):
            problems = failed(audit_run(run_id, tracking_uri=logged_study.uri))
        assert list(problems) == ["R matrix"]
        assert problems["R matrix"].startswith(
            "r_matrix.json does not match its logged sha256 (mscl.r_matrix_sha256): the file is corrupt or "
            f"was changed; 1 value(s) differ: stage1-Big {metric} Big: r_matrix 0.1235"
        )


def test_unknown_and_stage_runs_are_user_errors(logged_study: LoggedStudy) -> None:
    runner = CliRunner()
    unknown = runner.invoke(app, ["audit", "0123456789abcdef", "--tracking-uri", logged_study.uri])
    assert unknown.exit_code == 2
    assert "run '0123456789abcdef' not found" in unknown.stderr
    stage = logged_study.stages[0].info.run_id
    nested = runner.invoke(app, ["audit", stage, "--tracking-uri", logged_study.uri])
    assert nested.exit_code == 2
    assert f"run {stage} is not the parent run of an mscl study" in nested.stderr


def test_a_failed_check_exits_1(logged_study: LoggedStudy, tmp_path: Path) -> None:
    run_id = logged_study.parent.info.run_id
    result = CliRunner().invoke(
        app, ["audit", run_id, "--data", str(tmp_path), "--tracking-uri", logged_study.uri]
    )
    assert result.exit_code == 1
    assert "1 check(s) fail" in result.output


def bumped(freeze: str, package: str) -> str:
    """``freeze`` with ``package`` one patch version on (``mlflow==3.1.0`` -> ``mlflow==3.1.0.1``)."""
    lines = freeze.splitlines()
    [index] = [i for i, line in enumerate(lines) if line.lower().startswith(f"{package}==")]
    lines[index] += ".1"
    return "\n".join(lines) + "\n"


def test_a_lock_the_run_does_not_match_fails_the_lock_check(
    logged_study: LoggedStudy, lock_of_this_environment: Path
) -> None:
    version = lock_of_this_environment.read_text().split("\nmlflow==", 1)[1].split("\n", 1)[0]
    lock_of_this_environment.write_text(bumped(lock_of_this_environment.read_text(), "mlflow"))
    try:
        problems = failed(audit_run(logged_study.parent.info.run_id, tracking_uri=logged_study.uri))
    finally:
        lock_of_this_environment.write_text(lineage.pip_freeze())
    assert problems == {
        "packages vs lock": f"1 package(s) differ from requirements/lock.txt: mlflow (run {version}, "
        f"lock {version}.1)"
    }


def test_an_environment_that_drifted_since_the_run_fails_the_environment_check(
    logged_study: LoggedStudy, monkeypatch: pytest.MonkeyPatch
) -> None:
    current = bumped(lineage.pip_freeze(), "numpy")
    monkeypatch.setattr(audit, "pip_freeze", lambda: current)
    problems = failed(audit_run(logged_study.parent.info.run_id, tracking_uri=logged_study.uri))
    assert list(problems) == ["packages vs environment"]
    assert problems["packages vs environment"].startswith("1 package(s) differ: numpy (run ")
