"""Fault injection: a tiny replay study killed (SIGKILL) at every kill point of :mod:`mscl.faults`, then
resumed with ``mscl train --resume``, ends with the R matrices and stage checkpoints of an uninterrupted run.

Every study runs in its own process with one torch thread, so the killed, the resumed and the reference
study compute alike (CPU training is bitwise reproducible).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from mscl import faults
from mscl.tracking import tree
from mscl.tracking.checkpoints import stage_runs
from mscl.tracking.queries import is_parent
from mscl.tracking.rmatrix import RMatrix, load_r_matrix

TINY = [
    "--preset", "tiny", "--strategy", "replay", "--set", "model.channels=[2,4,8]",
    "--set", "train.patch_size=[8,8,8]", "--epochs", "2", "--set", "train.checkpoint_every=1",
    "--memory-backend", "hdf5", "--device", "cpu", "--quiet",
]  # fmt: skip
KILLS = {
    "step": 7,  # stage 2, second epoch: continues from the resume point of its first epoch
    "evaluate": 3,  # stage 2 trained, about to be scored (1 is the untrained baseline)
    "memory_commit": 3,  # stage 2's memory update, one of its two cases committed
    "upload": 6,  # before stage 2's checkpoint upload (config, dataset.json, stage 1's three files before)
    "uploaded": 6,  # stage 2's checkpoint uploaded, its sha256 not tagged yet
    "stage_end": 2,  # stage 2's run ended in MLflow, its resume point not yet removed
}


@dataclass(frozen=True)
class Study:
    """A study's tracking store and folders, and what it ended with."""

    folder: Path
    uri: str
    rmatrix: RMatrix
    checkpoints: list[str]


def train(
    folder: Path, data: Path, *extra: str, fault: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``mscl train`` in a fresh process (one torch thread), its store and folders under ``folder``."""
    env = {k: v for k, v in os.environ.items() if k not in (faults.ENV, "MLFLOW_TRACKING_URI")}
    env |= {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    if fault is not None:
        env[faults.ENV] = fault
    command = [
        sys.executable, "-m", "mscl.cli.main", "train", "--data", str(data), *TINY,
        "--tracking-uri", f"sqlite:///{folder}/mlflow.db", "--memory-path", str(folder / "memory"),
        "--set", f"train.checkpoint_dir={folder}/checkpoints", *extra,
    ]  # fmt: skip
    return subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=600)


def finished_study(folder: Path) -> Study:
    uri = f"sqlite:///{folder}/mlflow.db"
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("mscl")
    assert experiment is not None
    [parent] = [run for run in client.search_runs([experiment.experiment_id]) if is_parent(run)]
    assert parent.info.status == "FINISHED"
    stages = stage_runs(client, parent)
    assert [run.info.status for run in stages] == ["FINISHED"] * 3
    return Study(
        folder,
        uri,
        load_r_matrix(client, parent.info.run_id),
        [run.data.tags[tree.CHECKPOINT_SHA_TAG] for run in stages],
    )


@pytest.fixture(scope="module")
def reference(blob_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Study:
    folder = tmp_path_factory.mktemp("uninterrupted")
    done = train(folder, blob_dataset)
    assert done.returncode == 0, done.stderr
    return finished_study(folder)


def test_points_are_documented() -> None:
    assert set(KILLS) == set(faults.POINTS)
    assert all(f"``{point}``" in (faults.__doc__ or "") for point in faults.POINTS)


@pytest.mark.slow
@pytest.mark.parametrize("point", list(KILLS))
def test_a_study_killed_at_each_point_resumes_to_the_uninterrupted_result(
    point: str, reference: Study, blob_dataset: Path, tmp_path: Path
) -> None:
    killed = train(tmp_path, blob_dataset, fault=f"{point}:{KILLS[point]}")
    assert killed.returncode == -signal.SIGKILL, (
        f"{point} was never hit {KILLS[point]} times: {killed.stderr}"
    )
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.get_experiment_by_name("mscl")
    assert experiment is not None
    [parent] = [run for run in client.search_runs([experiment.experiment_id]) if is_parent(run)]
    assert parent.info.status == "RUNNING"  # SIGKILL: nothing could end it
    resumed = train(tmp_path, blob_dataset, "--resume", parent.info.run_id)
    assert resumed.returncode == 0, resumed.stderr
    study = finished_study(tmp_path)
    assert list(study.rmatrix.metrics) == list(reference.rmatrix.metrics)
    for metric in reference.rmatrix.metrics:
        np.testing.assert_array_equal(study.rmatrix.values(metric), reference.rmatrix.values(metric), metric)
        assert study.rmatrix.metric(metric).baseline == reference.rmatrix.metric(metric).baseline
    assert study.checkpoints == reference.checkpoints
    leftovers = list((tmp_path / "checkpoints").rglob("*"))
    assert not [path for path in leftovers if path.is_file()], "resume points left behind"
