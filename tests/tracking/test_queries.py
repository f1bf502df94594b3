"""Reading parent runs: paging, parent detection, skipped runs with reasons, duplicates."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from mscl.errors import TrackingError
from mscl.tracking.queries import read_parent_runs
from mscl.tracking.rmatrix import RMatrix, log_r_matrix

MANY = 120


def rmatrix(strategy: str, seed: int) -> RMatrix:
    return RMatrix(strategy=strategy, seed=seed, order=["A"], centers=["A"], matrix=[[0.5]])


def parent(client: MlflowClient, exp: str, rm: RMatrix | None, tags: dict | None = None, finish=True) -> str:
    """A parent run in three store calls: create (with tags), r_matrix.json, terminate."""
    strategy, seed = (rm.strategy, rm.seed) if rm else ("replay", 0)
    tags = {"mscl.strategy": strategy, "mscl.order_kind": "random", **(tags or {})}
    run_id = client.create_run(exp, run_name=f"{strategy}-seed{seed}", tags=tags).info.run_id
    if rm is not None:
        log_r_matrix(client, run_id, rm)
    if finish:
        client.set_terminated(run_id)
    return run_id


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> MlflowClient:
    root = tmp_path_factory.mktemp("mlflow")
    return MlflowClient(tracking_uri=f"sqlite:///{root}/mlflow.db")


def experiment(client: MlflowClient, name: str) -> str:
    root = client.tracking_uri.removeprefix("sqlite:///").removesuffix("mlflow.db")
    return client.create_experiment(name, artifact_location=f"{root}{name}")


def test_paging_reads_every_parent_run(client) -> None:
    exp = experiment(client, "many")
    for seed in range(MANY):
        parent(client, exp, rmatrix("replay", seed))
    found = read_parent_runs(client, "many", page_size=7)
    assert sorted(r.seed for r in found.runs) == list(range(MANY))
    assert found.skipped == [] and {r.order_kind for r in found.runs} == {"random"}


def test_skipped_runs_and_ignored_runs(client) -> None:
    exp = experiment(client, "mixed")
    good = parent(client, exp, rmatrix("finetune", 0))
    unfinished = parent(client, exp, rmatrix("finetune", 1), finish=False)
    missing = parent(client, exp, None)
    mismatch = parent(client, exp, rmatrix("finetune", 2), tags={"mscl.strategy": "replay"})
    nested = parent(client, exp, rmatrix("finetune", 3), tags={"mlflow.parentRunId": good})
    report = client.create_run(exp, run_name="report", tags={"mscl.kind": "report"}).info.run_id
    client.set_terminated(report)
    found = read_parent_runs(client, "mixed", page_size=2)
    assert [r.run_id for r in found.runs] == [good]
    reasons = {s.run_id: s.reason for s in found.skipped}
    assert reasons == {
        unfinished: "unfinished (status RUNNING)",
        missing: "no r_matrix.json artifact",
        mismatch: "tag mscl.strategy=replay disagrees with r_matrix.json strategy finetune",
    }
    assert nested not in reasons and report not in reasons


def test_a_later_duplicate_supersedes_the_earlier(client) -> None:
    exp = experiment(client, "dupes")
    first = parent(client, exp, rmatrix("replay", 0))
    second = parent(client, exp, rmatrix("replay", 0))
    found = read_parent_runs(client, "dupes")
    assert [r.run_id for r in found.runs] == [second]
    assert [(s.run_id, s.reason) for s in found.skipped] == [(first, f"superseded by the later run {second}")]


def test_unknown_experiment(client) -> None:
    with pytest.raises(TrackingError, match="unknown MLflow experiment 'absent'"):
        read_parent_runs(client, "absent")
