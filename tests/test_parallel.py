"""``mscl train --parallel``: a signal to the parent stops every worker and ends their runs as KILLED."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from mlflow.tracking import MlflowClient

from mscl.parallel import split_seeds, worker_gpu, worker_threads

TINY = ["--preset", "tiny", "--set", "model.channels=[2,4,8]", "--set", "train.patch_size=[8,8,8]"]


def test_seeds_threads_and_gpus_are_dealt_to_workers() -> None:
    assert split_seeds([0, 1, 2, 3, 4], 2) == [[0, 2, 4], [1, 3]]
    assert split_seeds([7], 4) == [[7]]
    assert worker_threads(3, cores=8) == 2 and worker_threads(16, cores=8) == 1
    assert [worker_gpu(i, "auto", 2) for i in range(3)] == ["0", "1", "0"]
    assert worker_gpu(1, "cuda:0", 2) is None and worker_gpu(0, "auto", 1) is None


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_a_signalled_parent_leaves_no_live_worker(signum: int, blob_dataset: Path, tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    command = [
        sys.executable, "-m", "mscl.cli.main", "train", "--data", str(blob_dataset), *TINY,
        "--strategy", "finetune", "--epochs", "500", "--seeds", "2", "--parallel", "2", "--device", "cpu",
        "--set", f"train.checkpoint_dir={tmp_path}/checkpoints", "--tracking-uri", uri, "--quiet",
    ]  # fmt: skip
    parent = subprocess.Popen(command, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    client = MlflowClient(uri)
    deadline = time.monotonic() + 180
    try:
        while time.monotonic() < deadline:  # both seeds training: each worker has opened its first stage
            experiment = client.get_experiment_by_name("mscl") if (tmp_path / "mlflow.db").exists() else None
            if (
                experiment
                and len(client.search_runs([experiment.experiment_id], "tags.`mscl.stage` = '1'")) == 2
            ):
                break
            assert parent.poll() is None, parent.communicate()[1]
            time.sleep(0.5)
        else:
            pytest.fail("the workers never started training")
        workers = psutil.Process(parent.pid).children(recursive=True)  # the two workers (and mp's tracker)
        assert len(workers) >= 2
        os.kill(parent.pid, signum)
        _, stderr = parent.communicate(timeout=120)
    finally:
        if parent.poll() is None:
            parent.kill()
    assert parent.returncode == 130, stderr
    assert "every worker stopped and its runs ended as KILLED" in stderr
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert alive == [], f"workers left running: {[p.pid for p in alive]}"
    found = client.search_runs([experiment.experiment_id])
    statuses = sorted((run.info.run_name, run.info.status) for run in found)
    assert statuses == [
        ("finetune-seed0", "KILLED"),
        ("finetune-seed1", "KILLED"),
        ("stage1-Big", "KILLED"),
        ("stage1-Big", "KILLED"),
    ]
    for run in found:
        if run.info.run_name.startswith("finetune-seed"):
            assert f"--resume {run.info.run_id}" in stderr
