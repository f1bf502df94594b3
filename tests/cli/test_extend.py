"""``mscl extend`` on bad input: one line naming the culprit, exit code 2, nothing written."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from mscl.api import train_study
from mscl.cli.main import app
from mscl.errors import StudyInterrupted
from mscl.protocol.observers import StudyObserver
from mscl.strategies.base import StagePlan
from mscl.testing.data import build_blob_dataset
from mscl.testing.strategies import contract_config


@dataclass(frozen=True)
class Store:
    """A tracking store with a finished one-center replay study (ram memory) and an interrupted one."""

    uri: str
    finished: str
    interrupted: str
    data: dict[str, Path]

    def snapshot(self) -> list[tuple[str, str, dict[str, str]]]:
        """Every run's id, status and tags: what a refused extension must leave as it was."""
        client = MlflowClient(self.uri)
        experiment = client.get_experiment_by_name("contract").experiment_id
        return sorted((r.info.run_id, r.info.status, r.data.tags) for r in client.search_runs([experiment]))


class InterruptFirstStage(StudyObserver):
    def stage_started(self, stage: StagePlan) -> None:
        raise KeyboardInterrupt


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    root = tmp_path_factory.mktemp("extend-cli")
    data = {
        "full": build_blob_dataset(root / "full"),
        "extra": build_blob_dataset(root / "extra", ["Extra"]),
        "coarse": build_blob_dataset(root / "coarse", ["Extra"], spacing=(2.0, 2.0, 2.0)),
    }
    cfg = contract_config(
        "replay", root / "study", {"train": {"epochs": 1}, "protocol": {"centers": ["Big"]}}
    )
    train_study(data["full"], cfg, quiet=True)
    with pytest.raises(StudyInterrupted):
        train_study(data["full"], cfg, quiet=True, observers=[InterruptFirstStage()])
    client = MlflowClient(cfg.tracking.uri)
    experiment = client.get_experiment_by_name("contract").experiment_id
    parents = client.search_runs(
        [experiment],
        "tags.`mscl.seed` = '0' and tags.`mscl.stage` IS NULL",
        order_by=["attributes.start_time ASC"],
    )
    finished, interrupted = (r.info.run_id for r in parents)
    return Store(cfg.tracking.uri, finished, interrupted, data)


def refused(store: Store, *args: str) -> str:
    before = store.snapshot()
    result = CliRunner().invoke(app, ["extend", *args, "--tracking-uri", store.uri, "--quiet"])
    output = result.output  # stdout and stderr
    assert result.exit_code == 2, output
    lines = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, output
    assert store.snapshot() == before
    return lines[0]


def test_an_unknown_run(store: Store) -> None:
    assert "run 'nope' not found" in refused(store, "nope", "--data", str(store.data["extra"]))


def test_an_interrupted_run(store: Store) -> None:
    line = refused(store, store.interrupted, "--data", str(store.data["extra"]))
    assert "it is KILLED, not FINISHED" in line and "--resume" in line


def test_a_ram_memory(store: Store) -> None:
    line = refused(store, store.finished, "--data", str(store.data["extra"]))
    assert "memory.backend ram" in line and "zarr" in line


def test_a_preprocessing_mismatch(store: Store) -> None:
    line = refused(store, store.finished, "--data", str(store.data["coarse"]))
    assert "preprocessing differs: spacing ((1.0, 1.0, 1.0) in the study, (2.0, 2.0, 2.0)" in line


def test_a_center_already_in_the_study(store: Store) -> None:
    line = refused(store, store.finished, "--data", str(store.data["full"]), "--centers", "Big")
    assert "Big already in the study" in line


def test_a_fixed_setting(store: Store) -> None:
    line = refused(store, store.finished, "--data", str(store.data["extra"]), "--set", "model.channels=[2,4]")
    assert "model.channels" in line


def test_an_empty_alias(store: Store) -> None:  # --register/--alias reach the extension's config
    line = refused(
        store, store.finished, "--data", str(store.data["extra"]), "--register", "m", "--alias", ""
    )
    assert "tracking.model_alias" in line
