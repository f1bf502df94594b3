"""`mscl study` on a local Ray instance: the grid's R matrices are those of sequential `mscl train`, a
killed worker is retried and resumes to the same matrix, Ctrl-C leaves a study that `--resume` finishes
(started by its alias `mscl train --parallel`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from mscl.cli.main import app
from mscl.tracking import tree
from mscl.tracking.rmatrix import load_r_matrix

TINY = ["--preset", "tiny", "--set", "model.channels=[2,4,8]", "--set", "train.patch_size=[8,8,8]"]
Matrices = dict[tuple[str, int], dict[str, list[list[float | None]]]]


def settings(tmp_path: Path, experiment: str) -> list[str]:
    return [
        *TINY, "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db", "--experiment", experiment,
        "--set", "train.threads=1",  # CPU results are identical at the same thread count
        "--set", f"train.checkpoint_dir={tmp_path}/checkpoints", "--quiet",
    ]  # fmt: skip


def parents(tmp_path: Path, experiment: str) -> list:
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    exp = client.get_experiment_by_name(experiment)
    found = client.search_runs([exp.experiment_id], f"tags.`{tree.STRATEGY_TAG}` != ''")
    return [run for run in found if run.info.run_name.split("-seed")[0] == run.data.tags[tree.STRATEGY_TAG]]


def matrices(tmp_path: Path, experiment: str) -> Matrices:
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    found = {}
    for run in parents(tmp_path, experiment):
        assert run.info.status == "FINISHED", run.info.run_name
        rmatrix = load_r_matrix(client, run.info.run_id)
        key = (run.data.tags[tree.STRATEGY_TAG], int(run.data.tags[tree.SEED_TAG]))
        assert key not in found, f"two parent runs of {key}"
        found[key] = {name: m.matrix for name, m in rmatrix.metrics.items()}
    return found


def study_runs(tmp_path: Path, experiment: str) -> list:
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id], f"tags.`{tree.KIND_TAG}` = '{tree.STUDY_KIND}'")


@pytest.fixture(scope="module")
def sequential(blob_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Matrices:
    """`mscl train` of finetune and replay, seeds 0 and 1, one after the other."""
    tmp = tmp_path_factory.mktemp("sequential")
    for strategy in ("finetune", "replay"):
        result = CliRunner().invoke(
            app, ["train", "--data", str(blob_dataset), "-s", strategy, "--seeds", "2", *settings(tmp, "seq")]
        )
        assert result.exit_code == 0, result.output
    return matrices(tmp, "seq")


@pytest.mark.slow
def test_a_grid_on_ray_gives_the_r_matrices_of_sequential_train(
    blob_dataset: Path, tmp_path: Path, sequential: Matrices
) -> None:
    result = CliRunner().invoke(
        app,
        ["study", "--data", str(blob_dataset), "--strategies", "finetune,replay", "--seeds", "2",
         "--workers", "2", "--report", str(tmp_path / "report"), *settings(tmp_path, "grid")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert matrices(tmp_path, "grid") == sequential
    (study,) = study_runs(tmp_path, "grid")
    assert study.info.status == "FINISHED"
    assert study.data.tags[tree.STUDY_CELLS_TAG] == study.data.tags[tree.STUDY_FINISHED_TAG] == "4"
    for run in parents(tmp_path, "grid"):
        assert run.data.tags[tree.PARENT_TAG] == study.info.run_id
        assert run.data.tags[tree.STUDY_CELL_TAG].startswith(f"{run.data.tags[tree.STRATEGY_TAG]}/seed")
        assert run.data.params["train.threads"] == "1"
    assert (tmp_path / "report" / "report.md").is_file()  # the report sees runs nested in a study
    assert "finetune" in (tmp_path / "report" / "report.md").read_text()
    # trained in a Ray worker, where ray's vendored folder (colorama, psutil) is on sys.path: the packages
    # logged are the environment's, as `mscl audit` in a new process (no ray imported) finds them
    first = parents(tmp_path, "grid")[0].info.run_id
    audit = subprocess.run(
        [sys.executable, "-m", "mscl.cli.main", "audit", first, "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db"],
        capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    [row] = [line for line in audit.stdout.splitlines() if "packages vs environment" in line]
    assert "PASS" in row, audit.stdout


def _mscl(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """`mscl` as a terminal starts it: SIGINT at its default even where this test session ignores it (a
    shell's background job, e.g. `make test &`, ignores SIGINT and every child would inherit that). A
    handled signal is reset to its default in the child at exec, so SIGINT is handled here while it starts
    (no ``preexec_fn``: it is unsafe with the threads MLflow and Ray leave in this process)."""
    command = [sys.executable, "-m", "mscl.cli.main", *args, *settings(tmp_path, "grid")]
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return subprocess.Popen(
            command, cwd=tmp_path, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})}
        )
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.slow
def test_a_killed_worker_is_retried_and_resumes_to_the_same_r_matrix(
    blob_dataset: Path, tmp_path: Path, sequential: Matrices
) -> None:
    fired = tmp_path / "fault-fired"
    env = {"MSCL_FAULT": "step:5", "MSCL_FAULT_ONCE": str(fired)}  # SIGKILL in stage 2 of the first try
    study = ["study", "--data", str(blob_dataset), "--strategies", "finetune", "--seed-list", "1"]
    process = _mscl(tmp_path, *study, env=env)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    assert fired.exists(), "the worker was never killed"
    assert matrices(tmp_path, "grid") == {("finetune", 1): sequential[("finetune", 1)]}


@pytest.mark.slow
def test_ctrl_c_kills_the_grid_and_resume_finishes_it(
    blob_dataset: Path, tmp_path: Path, sequential: Matrices
) -> None:
    # `mscl train --parallel` is the same grid on the same Ray path, resumed by `mscl study --resume`
    train = ["train", "--data", str(blob_dataset), "-s", "finetune", "--seeds", "2", "--parallel", "2"]
    process = _mscl(tmp_path, *train)
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    deadline = time.monotonic() + 180
    try:
        while time.monotonic() < deadline:  # a study has opened a stage run
            exp = client.get_experiment_by_name("grid") if (tmp_path / "mlflow.db").exists() else None
            if exp and client.search_runs([exp.experiment_id], f"tags.`{tree.STAGE_TAG}` = '1'"):
                break
            assert process.poll() is None, process.communicate()[1]
            time.sleep(0.2)
        else:
            pytest.fail("the grid never started training")
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=180)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr
    (study,) = study_runs(tmp_path, "grid")
    assert study.info.status == "KILLED"
    assert f"mscl study --resume {study.info.run_id}" in stderr
    assert all(run.info.status in ("KILLED", "FINISHED") for run in parents(tmp_path, "grid"))
    assert "RUNNING" not in {run.info.status for run in client.search_runs([study.info.experiment_id])}

    resumed = CliRunner().invoke(
        app,
        [
            "study",
            "--resume",
            study.info.run_id,
            "--tracking-uri",
            f"sqlite:///{tmp_path}/mlflow.db",
            "--quiet",
        ],
    )
    assert resumed.exit_code == 0, resumed.output
    assert matrices(tmp_path, "grid") == {key: m for key, m in sequential.items() if key[0] == "finetune"}
    (study,) = study_runs(tmp_path, "grid")
    assert study.info.status == "FINISHED"


def test_a_cluster_needs_a_tracking_server(blob_dataset: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["study", "--data", str(blob_dataset), "--strategies", "finetune", "--address", "auto",
         *settings(tmp_path, "grid")],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "cannot reach; start an MLflow server" in result.stderr
    assert not (tmp_path / "mlflow.db").exists()


def test_without_ray_the_error_names_the_extra(
    blob_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    for command in (
        ["study", "--data", str(blob_dataset), "--strategies", "finetune"],
        ["train", "--data", str(blob_dataset), "-s", "finetune", "--seeds", "2", "--parallel", "2"],
    ):
        result = CliRunner().invoke(app, [*command, *settings(tmp_path, "grid")])
        assert result.exit_code == 2
        assert result.stderr.strip().endswith("which is not installed: pip install 'mscl[ray]'")
    assert not (tmp_path / "mlflow.db").exists()


def test_a_cell_that_cannot_run_is_named_before_any_run(blob_dataset: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["study", "--data", str(blob_dataset), "--strategies", "finetune", "--orders", "Big,Nowhere",
         *settings(tmp_path, "grid")],
    )  # fmt: skip
    assert result.exit_code == 2
    assert (
        "error: finetune/seed0/Big,Nowhere: protocol.order names unknown center(s) Nowhere" in result.stderr
    )
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    assert all(not client.search_runs([e.experiment_id]) for e in client.search_experiments())


def test_resume_refuses_a_new_grid() -> None:
    result = CliRunner().invoke(app, ["study", "--resume", "0" * 32, "--strategies", "replay"])
    assert result.exit_code == 2
    assert "--strategies cannot be used with --resume" in result.stderr


@pytest.mark.slow
def test_a_local_instance_runs_its_workers_at_normal_priority() -> None:
    from mscl.study.grid import StudySettings
    from mscl.study.scheduler import ray_instance

    with ray_instance(StudySettings(strategies=["finetune"], workers=1, cpus_per_study=1)) as (ray, _):
        niceness = ray.get(ray.remote(lambda: os.nice(0)).remote())
    assert niceness == os.nice(0)  # the caller's priority; Ray's own default is 15 above it
