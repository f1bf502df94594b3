"""A tiny study trained once for the predict tests, its final model registered as ``blobs@champion``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from mscl.cli.main import app

TINY = ["--preset", "tiny", "--set", "model.channels=[2,4,8]", "--set", "train.patch_size=[8,8,8]"]


@dataclass(frozen=True)
class Study:
    uri: str
    parent_run_id: str
    folder: Path


@pytest.fixture(scope="session")
def study(blob_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Study:
    folder = tmp_path_factory.mktemp("predict-study")
    uri = f"sqlite:///{folder}/mlflow.db"
    result = CliRunner().invoke(
        app,
        ["train", "--data", str(blob_dataset), *TINY, "--epochs", "1", "--tracking-uri", uri, "--quiet",
         "--set", f"train.checkpoint_dir={folder}/checkpoints", "--register", "blobs"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    client = MlflowClient(uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    parents = [r for r in client.search_runs(experiments) if r.info.run_name == "replay-seed0"]
    return Study(uri, parents[0].info.run_id, folder)
