"""Stage runs carry their study's strategy and seed; every query still finds each parent run exactly once."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.entities import Param
from mlflow.tracking import MlflowClient

from mscl.config import ExperimentConfig, validate_mapping
from mscl.data.manifest import DatasetManifest
from mscl.errors import TrackingError
from mscl.strategies.base import StagePlan
from mscl.tracking import tree
from mscl.tracking.queries import is_parent, parent_strategies, read_parent_runs
from mscl.tracking.resume import parent_run
from mscl.tracking.rmatrix import RMatrix, log_r_matrix
from mscl.tracking.stages import log_missing, stage_params, stage_tags

STAGES = [StagePlan(0, "Big", ("Big",), True), StagePlan(1, "Mid", ("Mid",), False)]


@pytest.fixture(scope="module")
def manifest(blob_dataset: Path) -> DatasetManifest:
    return DatasetManifest.read(blob_dataset)


def config(strategy: str) -> ExperimentConfig:
    return validate_mapping({"strategy": {"name": strategy}, "train": {"epochs": 7, "max_epochs": 2}})


def test_stage_tags_place_the_run_in_its_study() -> None:
    assert stage_tags(config("replay"), 3, STAGES[1]) == {
        "mscl.strategy": "replay",
        "mscl.seed": "3",
        "mscl.stage": "2",
        "mscl.center": "Mid",
        "mscl.train_centers": "Mid",
    }


def test_stage_params_are_what_varies_per_stage(manifest: DatasetManifest) -> None:
    cfg = config("ewc")
    params = stage_params(cfg, 3, STAGES[0], manifest)
    options = {k: v for k, v in cfg.flat().items() if k.startswith("strategy.")}
    assert len(options) > 2  # name, carry_over and EWC's own knobs
    assert params == {
        "stage": "1",
        "center": "Big",
        "train_centers": "Big",
        "train_cases": str(len(manifest.cases_of("Big", "train"))),
        "epochs": "2",
        "fresh": "True",
        "seed": "3",
        **options,
    }
    assert set(tree.STAGE_PARAMS) <= set(params)
    assert all(params[key] == cfg.flat()[key] for key in options)  # the parent run's keys and values


def test_a_reattached_stage_run_only_gains_what_it_lacks(tmp_path: Path) -> None:
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    exp = client.create_experiment("x", artifact_location=str(tmp_path / "artifacts"))
    run_id = client.create_run(exp, tags={"mscl.stage": "1"}).info.run_id
    client.log_batch(run_id, params=[Param("epochs", "5")])  # logged by an earlier version: kept as is
    log_missing(
        client, client.get_run(run_id), {"mscl.stage": "9", "mscl.seed": "0"}, {"epochs": "2", "a": "b"}
    )
    data = client.get_run(run_id).data
    assert data.params == {"epochs": "5", "a": "b"}
    assert data.tags["mscl.stage"] == "1" and data.tags["mscl.seed"] == "0"


def parent(client: MlflowClient, exp: str, strategy: str, seed: int, extra: dict[str, str]) -> str:
    """A finished parent run with its R matrix and two stage runs tagged as ``mscl train`` tags them."""
    cfg = config(strategy)
    tags = {"mscl.strategy": strategy, "mscl.seed": str(seed), "mscl.order_kind": "custom", **extra}
    run_id = client.create_run(exp, run_name=f"{strategy}-seed{seed}", tags=tags).info.run_id
    for stage in STAGES:
        stage_tagged = {**stage_tags(cfg, seed, stage), tree.PARENT_TAG: run_id}
        client.set_terminated(client.create_run(exp, run_name=stage.name, tags=stage_tagged).info.run_id)
    order = [s.center for s in STAGES]
    rmatrix = RMatrix(
        strategy=strategy, seed=seed, order=order, centers=order, matrix=[[0.5, 0.1], [0.4, 0.6]]
    )
    log_r_matrix(client, run_id, rmatrix)
    client.set_terminated(run_id)
    return run_id


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[MlflowClient, dict[str, str]]:
    """Parents of every kind (plain, under a project run, under a study run), each with tagged stage runs;
    also a stage run that lost its parent id (a copied run, say)."""
    root = tmp_path_factory.mktemp("tagged")
    client = MlflowClient(f"sqlite:///{root}/mlflow.db")
    exp = client.create_experiment("tagged", artifact_location=str(root / "artifacts"))
    project = client.create_run(exp, run_name="project").info.run_id
    study = client.create_run(exp, run_name="study", tags={"mscl.kind": "study"}).info.run_id
    parents = {
        "replay-0": parent(client, exp, "replay", 0, {}),
        "replay-1": parent(
            client, exp, "replay", 1, {tree.PARENT_TAG: project, tree.PROJECT_RUN_TAG: project}
        ),
        "finetune-0": parent(client, exp, "finetune", 0, {tree.PARENT_TAG: study, tree.STUDY_RUN_TAG: study}),
    }
    orphan = client.create_run(exp, run_name="stage1-Big", tags=stage_tags(config("replay"), 5, STAGES[0]))
    client.set_terminated(orphan.info.run_id)
    return client, {**parents, "orphan": orphan.info.run_id}


def test_search_by_strategy_and_stage_finds_stage_runs(store: tuple[MlflowClient, dict[str, str]]) -> None:
    client, runs = store
    exp = client.get_experiment_by_name("tagged").experiment_id
    second = client.search_runs([exp], "tags.`mscl.strategy` = 'replay' and tags.`mscl.stage` = '2'")
    assert sorted((r.info.run_name, r.data.tags["mscl.seed"]) for r in second) == [
        ("stage2-Mid", "0"),
        ("stage2-Mid", "1"),
    ]
    assert {r.data.tags[tree.PARENT_TAG] for r in second} == {runs["replay-0"], runs["replay-1"]}
    parents = client.search_runs([exp], "tags.`mscl.strategy` = 'replay' and tags.`mscl.stage` IS NULL")
    assert sorted(r.info.run_id for r in parents) == sorted([runs["replay-0"], runs["replay-1"]])


def test_every_query_finds_each_parent_once(store: tuple[MlflowClient, dict[str, str]]) -> None:
    client, runs = store
    parents = {runs[name] for name in ("replay-0", "replay-1", "finetune-0")}
    found = read_parent_runs(client, "tagged", page_size=3)
    assert sorted(r.run_id for r in found.runs) == sorted(parents) and found.skipped == []
    assert parent_strategies(client, "tagged") == {"replay", "finetune"}
    exp = client.get_experiment_by_name("tagged").experiment_id
    assert {r.info.run_id for r in client.search_runs([exp]) if is_parent(r)} == parents
    for run_id in parents:
        assert parent_run(client, run_id).info.run_id == run_id  # resume, extend
    stage = client.search_runs([exp], f"tags.`{tree.PARENT_TAG}` = '{runs['replay-0']}'")[0]
    for not_parent in (stage.info.run_id, runs["orphan"]):
        with pytest.raises(TrackingError, match="is not the parent run of an mscl study"):
            parent_run(client, not_parent)
