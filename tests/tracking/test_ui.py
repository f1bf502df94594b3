"""The MLflow UI: a new experiment's saved runs view, the runs-table address, ``mscl ui-url``."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from mscl.cli.main import app
from mscl.tracking import tree
from mscl.tracking.runs import ensure_experiment
from mscl.tracking.ui import experiment_tags, runs_url, runs_view, saved_view, ui_lines

MLFLOW_JS = Path(mlflow.__file__).parent / "server" / "js" / "build" / "static" / "js"


def test_the_view_shows_the_study_tags_and_the_key_parent_metrics() -> None:
    assert runs_view("ndsc")["selectedColumns"] == [
        "tags.`mscl.strategy`",
        "tags.`mscl.seed`",
        "tags.`mscl.stage`",
        "tags.`mscl.center`",
        "metrics.`acc/ndsc`",
        "metrics.`bwt/ndsc`",
        "metrics.`forgetting/ndsc`",
        "metrics.`fwt/ndsc`",
    ]


def test_the_saved_view_is_an_envelope_and_a_plain_state() -> None:
    state = runs_view()
    value = json.loads(saved_view(state, now_ms=1234))
    assert value["name"] == tree.RUNS_VIEW_NAME and value["createdAt"] == value["updatedAt"] == 1234
    assert json.loads(value["state"]) == state  # MLflow 3.17's saved views
    assert value["selectedColumns"] == state["selectedColumns"]  # earlier MLflow 3 UIs' shared views
    tags = experiment_tags()
    assert tags[tree.EXPERIMENT_KIND_TAG] == "custom_model_development"
    assert (
        json.loads(json.loads(tags[tree.RUNS_VIEW_TAG])["state"])["selectedColumns"][-4]
        == "metrics.`acc/dice`"
    )


def test_runs_url_opens_the_runs_table_with_the_view() -> None:
    assert runs_url("7") == (
        "http://127.0.0.1:5000/#/experiments/7/runs?viewStateShareKey=mscl-runs&compareRunsMode=TABLE"
    )
    assert runs_url("7", "http://host:8080/", view=False) == (
        "http://host:8080/#/experiments/7/runs?compareRunsMode=TABLE"
    )


@pytest.mark.skipif(not MLFLOW_JS.is_dir(), reason="MLflow's UI build is not installed")
def test_the_installed_ui_knows_the_names_used() -> None:
    """The route, the URL parameters, the tag prefix and the envelope of the installed MLflow UI."""
    bundle = "".join(path.read_text(encoding="utf-8", errors="replace") for path in MLFLOW_JS.glob("*.js"))
    for needle in (
        '"/experiments/:experimentId/runs"',
        '"viewStateShareKey"',
        '"mlflow.sharedViewState."',
        '"compareRunsMode"',
        '"mlflow.experimentKind"',
        'CUSTOM_MODEL_DEVELOPMENT="custom_model_development"',
        '"selectedColumns"',
        "Invalid saved-view envelope",
        'ATTRIBUTES:"attributes",PARAMS:"params",METRICS:"metrics",TAGS:"tags"',
    ):
        assert needle in bundle, needle


def test_a_new_experiment_gets_the_view_and_ui_url_prints_its_address(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    try:
        fresh = ensure_experiment("fresh", "ndsc")
        MlflowClient(uri).create_experiment("older", artifact_location=str(tmp_path / "older"))
    finally:
        mlflow.set_tracking_uri(None)
    tags = MlflowClient(uri).get_experiment(fresh).tags
    assert tags[tree.RUNS_VIEW_TAG] and "metrics.`bwt/ndsc`" in tags[tree.RUNS_VIEW_TAG]
    assert ui_lines(uri, "fresh") == [
        f"MLflow UI: mlflow ui --backend-store-uri {uri}",
        f"runs table: {runs_url(fresh)}",
    ]
    older = MlflowClient(uri).get_experiment_by_name("older").experiment_id
    result = CliRunner().invoke(
        app, ["ui-url", "--experiment", "older", "--tracking-uri", uri, "--port", "5001"]
    )
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [  # no saved view to open on an experiment mscl did not create
        f"MLflow UI: mlflow ui --backend-store-uri {uri} --port 5001",
        f"runs table: http://127.0.0.1:5001/#/experiments/{older}/runs?compareRunsMode=TABLE",
    ]
    unknown = CliRunner().invoke(app, ["ui-url", "--experiment", "nope", "--tracking-uri", uri])
    assert unknown.exit_code == 2 and "unknown MLflow experiment 'nope'" in unknown.stderr


def test_a_tracking_server_serves_its_own_ui(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    exp = MlflowClient(uri).create_experiment("x", artifact_location=str(tmp_path), tags=experiment_tags())
    monkeypatch.setattr("mscl.tracking.ui.is_http", lambda _: True)
    assert ui_lines(uri, "x") == [f"runs table: {runs_url(exp, uri)}"]
