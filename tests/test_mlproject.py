"""MLproject and python_env.yaml: each entry point is a valid `mscl` call; `mlflow run .` works end to end."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import typer
import yaml
from mlflow.projects import _project_spec
from mlflow.tracking import MlflowClient

from mscl.cli.main import app

ROOT = Path(__file__).resolve().parents[1]
CALLS = [
    ("main", {}),
    ("main", {"centers": "[AMU,Montp,UCSF]", "seeds": 2}),
    ("prepare", {}),
    ("train", {"data": "mlproject/data"}),
    ("study", {"data": "mlproject/data", "orders": "descending;random"}),
    ("evaluate", {"run_id": "0" * 32, "data": "mlproject/data"}),
    ("report", {}),
    ("audit", {"run_id": "0" * 32}),
]
LEFTOVERS = ("mlflow.db", "mlruns", "mlartifacts", "demo", "mlproject", "checkpoints")


def mscl_calls(command: str) -> list[list[str]]:
    """The argument lists of every ``mscl`` call in a shell command chained with ``&&``."""
    calls = [shlex.split(part) for part in command.split("&&")]
    return [call[1:] for call in calls if call[0] == "mscl"]


@pytest.mark.parametrize(("name", "params"), CALLS)
def test_entry_points_are_valid_mscl_calls(name: str, params: dict[str, object]) -> None:
    entry = _project_spec.load_project(str(ROOT)).get_entry_point(name)
    command = entry.compute_command(params, storage_dir=None)
    calls = mscl_calls(command)
    assert calls, command
    group = typer.main.get_command(app)
    for sub, *args in calls:
        group.commands[sub].make_context(sub, args)  # raises on an unknown command, option or value


OUTPUT_PARAMETERS = {"main": "out_dir", "prepare": "out", "report": "out"}


def test_outputs_and_store_are_the_projects_own() -> None:
    """Nothing another README command writes (`make demo`'s demo/, a plain `mscl train`'s ./mlflow.db)."""
    project = _project_spec.load_project(str(ROOT))
    for name, parameter in OUTPUT_PARAMETERS.items():
        default = project.get_entry_point(name).parameters[parameter].default
        assert Path(str(default)).parts[0] == "mlproject", (name, default)
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "MLPROJECT_DIR ?= mlproject" in makefile
    assert "MLFLOW_TRACKING_URI=sqlite:///$(abspath $(MLPROJECT_DIR))/mlflow.db" in makefile
    assert "DEMO_DIR ?= demo" in makefile


def test_python_env_installs_the_lock_and_mscl() -> None:
    env = yaml.safe_load((ROOT / "python_env.yaml").read_text())
    assert env["python"] == "3.11"
    assert "-r requirements/lock.txt" in env["dependencies"]
    assert "." in env["dependencies"]
    assert (ROOT / "requirements" / "lock.txt").is_file()
    assert _project_spec.load_project(str(ROOT)).env_config_path == str(ROOT / "python_env.yaml")


@pytest.mark.slow
def test_mlflow_run_main_nests_the_study_under_the_project_run(tmp_path: Path) -> None:
    before = {name for name in LEFTOVERS if (ROOT / name).exists()}
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    for variable in (
        "MLFLOW_RUN_ID",
        "MLFLOW_EXPERIMENT_ID",
        "MLFLOW_EXPERIMENT_NAME",
        "MSCL_PROJECT_RUN_ID",
    ):
        env.pop(variable, None)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "mlflow", "run", ".", "--env-manager", "local", "-P", "preset=tiny",
               "-P", "centers=[AMU,Montp,UCSF]", "-P", f"out_dir={out}"]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    [project] = client.search_runs(["0"])  # MLflow's Default experiment
    [parent] = client.search_runs(
        [client.get_experiment_by_name("mscl").experiment_id],
        "tags.`mscl.seed` = '0' and tags.`mscl.stage` IS NULL",
    )
    assert project.info.status == parent.info.status == "FINISHED"
    assert project.data.params["preset"] == "tiny"
    assert (
        parent.data.tags["mlflow.parentRunId"] == parent.data.tags["mscl.project_run"] == project.info.run_id
    )
    assert parent.data.params["preset"] == "tiny"
    assert "read 1 run," in done.stdout  # the reporter counts the nested parent run as a study
    assert (out / "report" / "report.html").is_file()
    assert {name for name in LEFTOVERS if (ROOT / name).exists()} == before
