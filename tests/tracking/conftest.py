"""A study trained once for the lineage and audit tests, its git probe reporting a clean checkout and its
lock file the environment's own: the tests check the audit, not whether this venv matches
``requirements/lock.txt`` (CI's fresh one does; a developer's may have drifted, and the audit of a real run
in it rightly fails ``packages vs lock``)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from mlflow.entities import Run
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from mscl.cli.main import app
from mscl.tracking import audit, lineage
from mscl.tracking.checkpoints import stage_runs

TINY = ["--preset", "tiny", "--set", "model.channels=[2,4,8]", "--set", "train.patch_size=[8,8,8]"]


@dataclass(frozen=True)
class LoggedStudy:
    """One seed of replay on the blob dataset, tracked in its own sqlite store."""

    uri: str
    client: MlflowClient
    parent: Run
    stages: list[Run]
    commit: str


def head_commit() -> str:
    """The checkout's HEAD (what MLflow itself would tag), or a stand-in outside a checkout."""
    command = ["git", "-C", str(lineage.PACKAGE_DIR), "rev-parse", "HEAD"]
    done = subprocess.run(command, capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else "0" * 40


@pytest.fixture(scope="session")
def environment_lock(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lock file listing exactly this environment's packages."""
    path = tmp_path_factory.mktemp("lock") / "lock.txt"
    path.write_text(lineage.pip_freeze(), encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def lock_of_this_environment(environment_lock: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Lineage logs, and the audit compares with, :func:`environment_lock` instead of the source tree's."""
    for module in (lineage, audit):
        monkeypatch.setattr(module, "LOCK_FILE", environment_lock)
    return environment_lock


@pytest.fixture(scope="session")
def logged_study(
    blob_dataset: Path, tmp_path_factory: pytest.TempPathFactory, environment_lock: Path
) -> LoggedStudy:
    """Train with the git probe reporting a clean tree (the real checkout may have local changes)."""
    root = tmp_path_factory.mktemp("logged")
    uri = f"sqlite:///{root}/mlflow.db"
    commit = head_commit()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(lineage, "git_state", lambda folder=None: lineage.GitState(commit, "false"))
        patch.setattr(lineage, "LOCK_FILE", environment_lock)
        result = CliRunner().invoke(
            app,
            ["train", "--data", str(blob_dataset), "--strategy", "replay", *TINY, "--epochs", "1",
             "--set", f"train.checkpoint_dir={root}/checkpoints", "--tracking-uri", uri, "--quiet"],
        )  # fmt: skip
    assert result.exit_code == 0, result.output
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("mscl").experiment_id
    [parent] = client.search_runs([experiment], "tags.`mscl.seed` = '0' and tags.`mscl.stage` IS NULL")
    return LoggedStudy(uri, client, parent, stage_runs(client, parent), commit)
