"""mscl against a real ``mlflow server`` on 127.0.0.1: a study and its report, fail-fast, retried errors."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from mscl.cli.main import app
from mscl.tracking.checkpoints import stage_runs
from mscl.tracking.lineage import file_sha256
from mscl.tracking.rmatrix import load_r_matrix
from mscl.tracking.tree import CHECKPOINT_SHA_TAG
from mscl.tracking.uri import DEFAULT_CONNECT_TIMEOUT_S, HTTP_RETRY_DEFAULTS
from tests.tracking.mlflow_server import Fault, FlakyProxy, MlflowServer, free_port

TINY = ["--preset", "tiny", "--set", "model.channels=[2,4,8]", "--set", "train.patch_size=[8,8,8]"]
CLIENT_SETTINGS = (*HTTP_RETRY_DEFAULTS, "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER")
FAIL_FAST_S = 3.0  # a command against a dead URI, with a 1 s connect timeout, returns within this


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """One server for the session, stopped (process group and all) at the end."""
    server = MlflowServer(tmp_path_factory.mktemp("mlflow-server"), free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def client_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The MLflow client settings as a user who set none; restored after the test."""
    for key in CLIENT_SETTINGS:
        monkeypatch.delenv(key, raising=False)
    return monkeypatch


def train_args(data: Path, uri: str, experiment: str, checkpoints: Path) -> list[str]:
    """``mscl train`` of one replay seed, one epoch per stage, on the blob dataset."""
    return [
        "train", "--data", str(data), "--strategy", "replay", *TINY, "--epochs", "1",
        "--set", f"train.checkpoint_dir={checkpoints}", "--tracking-uri", uri, "--experiment", experiment,
        "--quiet",
    ]  # fmt: skip


def parent_run(client: MlflowClient, experiment: str) -> Run:
    """The only study parent run of ``experiment``."""
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no experiment {experiment!r}"
    [parent] = client.search_runs([exp.experiment_id], "tags.`mscl.seed` = '0' and tags.`mscl.stage` IS NULL")
    return parent


def assert_study_tree(client: MlflowClient, parent: Run, downloads: Path) -> None:
    """Parent FINISHED with r_matrix.json; 3 stage runs whose metrics are its rows and whose checkpoints,
    downloaded into ``downloads``, hash to their tags."""
    assert parent.info.status == "FINISHED"
    assert parent.data.params["seed"] == "0"
    stages = stage_runs(client, parent)
    assert [s.info.run_name for s in stages] == ["stage1-Big", "stage2-Mid", "stage3-Small"]
    rmatrix = load_r_matrix(client, parent.info.run_id)
    for index, stage in enumerate(stages):
        assert stage.info.status == "FINISHED"
        assert [stage.data.metrics[f"test/dice/{c}"] for c in rmatrix.centers] == pytest.approx(
            list(rmatrix.values("dice")[index])
        )
        path = client.download_artifacts(stage.info.run_id, "checkpoint/model.pt", str(downloads))
        assert file_sha256(Path(path)) == stage.data.tags[CHECKPOINT_SHA_TAG]


@dataclass(frozen=True)
class ServedStudy:
    """One seed of replay trained against the server."""

    server: MlflowServer
    client: MlflowClient
    parent: Run
    environ: dict[str, str]  # the MLflow client settings mscl left in the environment


@pytest.fixture(scope="module")
def served_study(
    mlflow_server: MlflowServer, blob_dataset: Path, tmp_path_factory: pytest.TempPathFactory
) -> ServedStudy:
    root = tmp_path_factory.mktemp("served")
    with pytest.MonkeyPatch.context() as patch:
        for key in CLIENT_SETTINGS:
            patch.delenv(key, raising=False)
        result = CliRunner().invoke(app, train_args(blob_dataset, mlflow_server.uri, "served", root / "ck"))
        environ = {key: os.environ[key] for key in CLIENT_SETTINGS if key in os.environ}
    assert result.exit_code == 0, f"{result.output}\n{mlflow_server.log_tail()}"
    client = MlflowClient(mlflow_server.uri)
    return ServedStudy(mlflow_server, client, parent_run(client, "served"), environ)


@pytest.mark.slow
def test_a_study_on_the_server_writes_the_run_tree_through_it(
    served_study: ServedStudy, tmp_path: Path
) -> None:
    client, parent, server = served_study.client, served_study.parent, served_study.server
    assert_study_tree(client, parent, tmp_path)
    experiment = client.get_experiment(parent.info.experiment_id)
    assert experiment.artifact_location.startswith("mlflow-artifacts:")  # uploaded through the server
    stored = server.artifacts / parent.info.experiment_id / parent.info.run_id / "artifacts"
    assert {"r_matrix.json", "config.yaml", "dataset.json"} <= {p.name for p in stored.iterdir()}
    assert served_study.environ == HTTP_RETRY_DEFAULTS  # mscl's retry defaults, the user had none


@pytest.mark.slow
def test_report_reads_the_server_and_logs_to_it(served_study: ServedStudy, tmp_path: Path) -> None:
    out = tmp_path / "report"
    uri = served_study.server.uri
    result = CliRunner().invoke(
        app, ["report", "--experiment", "served", "--out", str(out), "--tracking-uri", uri]
    )
    assert result.exit_code == 0, result.output
    assert "read 1 run," in result.stdout
    assert {"report.md", "report.html"} <= {p.name for p in out.iterdir()}
    assert "replay" in (out / "report.md").read_text(encoding="utf-8")
    client = served_study.client
    [logged] = client.search_runs([served_study.parent.info.experiment_id], "tags.`mscl.kind` = 'report'")
    assert {"report.md", "report.html"} <= {a.path for a in client.list_artifacts(logged.info.run_id)}


@pytest.mark.slow
def test_transient_server_errors_during_a_study_are_retried(
    mlflow_server: MlflowServer, blob_dataset: Path, client_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    client_env.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")  # the user's own settings: no waiting
    client_env.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_JITTER", "0")
    faults = [
        Fault("POST", "/runs/create", 1, "503"),  # the parent run
        Fault("POST", "/runs/log-batch", 2, "drop"),  # its params and tags
        Fault("PUT", "/checkpoint/model.pt", 2, "503"),  # stage 1's checkpoint upload
    ]
    with FlakyProxy(mlflow_server.port, faults) as proxy:
        result = CliRunner().invoke(app, train_args(blob_dataset, proxy.uri, "retried", tmp_path / "ck"))
        assert result.exit_code == 0, f"{result.output}\n{mlflow_server.log_tail()}"
    assert [f.served for f in faults] == [f.count for f in faults]
    client = MlflowClient(mlflow_server.uri)
    parent = parent_run(client, "retried")  # exactly one parent: the refused create was not duplicated
    assert_study_tree(client, parent, tmp_path)
    assert os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] == "0"  # the user's setting is kept
    assert (
        os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"]
        == HTTP_RETRY_DEFAULTS["MLFLOW_HTTP_REQUEST_MAX_RETRIES"]
    )


@pytest.mark.slow
def test_a_server_that_stays_down_fails_the_study_after_its_retry_budget(
    mlflow_server: MlflowServer, blob_dataset: Path, client_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Once: one request's budget, then the runs are ended without retries (not budget after budget)."""
    client_env.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_JITTER", "0")
    down = Fault("PUT", "/checkpoint/model.pt", 1000, "503")  # every upload of stage 1's checkpoint
    args = [*train_args(blob_dataset, "{uri}", "down", tmp_path / "ck"), "--set", "tracking.retry_budget_s=4"]
    with FlakyProxy(mlflow_server.port, [down]) as proxy:
        started = time.monotonic()
        result = CliRunner().invoke(app, [a.format(uri=proxy.uri) for a in args])
        seconds = time.monotonic() - started
    assert result.exit_code == 2, result.output
    [line] = result.stderr.strip().splitlines()
    parent = parent_run(MlflowClient(mlflow_server.uri), "down")
    assert line.startswith(
        f"error: run {parent.info.run_id}: the tracking server {proxy.uri} failed mid-run, after retrying "
        "for about 4 s (tracking.retry_budget_s): "
    )
    assert down.served == 3  # the first try and its 2 retries: the budget's, once
    assert seconds < 60  # the study's first stage and one budget, not the default's ten minutes per request
    assert parent.info.status == "FAILED"


@pytest.mark.slow
def test_the_injected_faults_fail_a_client_that_does_not_retry(
    mlflow_server: MlflowServer, client_env: pytest.MonkeyPatch
) -> None:
    client_env.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    client_env.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_JITTER", "0")
    for kind in ("503", "drop"):
        with FlakyProxy(mlflow_server.port, [Fault("GET", "/experiments/get-by-name", 1, kind)]) as proxy:
            client_env.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
            with pytest.raises(MlflowException, match=r"API request to .* failed"):
                MlflowClient(proxy.uri).get_experiment_by_name("Default")
            proxy.faults.append(Fault("GET", "/experiments/get-by-name", 1, kind))
            client_env.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
            assert MlflowClient(proxy.uri).get_experiment_by_name("Default") is not None


# --- fail fast: nothing listening, or a socket that accepts but never answers ---------------------------

RUN_ID = "0123456789abcdef0123456789abcdef"
QUICK = ["--set", "tracking.connect_timeout_s=1"]


@dataclass(frozen=True)
class Command:
    """A command line (``{data}`` and ``{tmp}`` filled in, ``--tracking-uri`` appended) and the function
    it must not reach when the tracking store is dead."""

    args: list[str]
    too_late: str  # "module.attribute" that runs only after the tracking check


COMMANDS = {
    "train": Command(
        ["train", "--data", "{data}", "-s", "finetune", *TINY, *QUICK], "mscl.api.PreparedDataset"
    ),
    "train --parallel": Command(
        ["train", "--data", "{data}", "-s", "finetune", *TINY, *QUICK, "--seeds", "2", "--parallel", "2"],
        "mscl.study.run._preflight",
    ),
    "train --resume": Command(["train", "--resume", RUN_ID, "--data", "{data}"], "mscl.api.PreparedDataset"),
    "evaluate": Command(["evaluate", "--run-id", RUN_ID, "--data", "{data}"], "mscl.api.PreparedDataset"),
    "report": Command(["report", "-e", "x", "--out", "{tmp}/report"], "mscl.reports.api.read_parent_runs"),
    "audit": Command(["audit", RUN_ID], "mscl.tracking.audit.get_run"),
}


def invoke_dead(
    command: Command, uri: str, blob_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[int, list[str], float]:
    """Run ``command`` against ``uri`` in an empty folder; (exit code, stderr lines, seconds)."""

    def reached(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"{command.too_late} ran before the tracking check")

    monkeypatch.setattr(command.too_late, reached)
    monkeypatch.chdir(tmp_path)
    started = time.monotonic()
    args = [a.format(data=blob_dataset, tmp=tmp_path) for a in command.args]
    result = CliRunner().invoke(app, [*args, "--tracking-uri", uri])
    seconds = time.monotonic() - started
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert list(tmp_path.iterdir()) == []  # no local store, no report folder, no checkpoints
    return result.exit_code, result.stderr.strip().splitlines(), seconds


@pytest.mark.parametrize("name", list(COMMANDS))
def test_commands_fail_fast_when_nothing_listens(
    name: str, blob_dataset: Path, tmp_path: Path, client_env: pytest.MonkeyPatch
) -> None:
    uri = f"http://127.0.0.1:{free_port()}"
    code, lines, seconds = invoke_dead(COMMANDS[name], uri, blob_dataset, tmp_path, client_env)
    assert code == 2
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"error: tracking server {uri} refused the connection")
    assert seconds < FAIL_FAST_S
    assert not any(key in os.environ for key in HTTP_RETRY_DEFAULTS)  # nothing set for a dead server


@pytest.mark.parametrize(("name", "limit_s"), [("train", 1.0), ("audit", DEFAULT_CONNECT_TIMEOUT_S)])
def test_commands_fail_fast_on_a_server_that_never_answers(
    name: str, limit_s: float, blob_dataset: Path, tmp_path: Path, client_env: pytest.MonkeyPatch
) -> None:
    with socket.socket() as silent:  # accepts connections into its backlog, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        uri = f"http://127.0.0.1:{silent.getsockname()[1]}"
        code, lines, seconds = invoke_dead(COMMANDS[name], uri, blob_dataset, tmp_path, client_env)
    assert code == 2
    assert lines == [
        f"error: tracking server {uri} did not answer within {limit_s:g} s (timed out); "
        "start it or pass another --tracking-uri"
    ]
    assert limit_s <= seconds < limit_s + FAIL_FAST_S
