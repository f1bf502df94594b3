"""`mscl train` writes stage contract 2: parent run per (strategy, seed), nested stage runs, r_matrix.json."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from mscl.cli.main import app
from mscl.config import DEFAULT_METRICS
from mscl.data.manifest import DatasetManifest
from mscl.tracking import tree
from mscl.tracking.checkpoints import stage_runs
from mscl.tracking.queries import read_parent_runs
from mscl.tracking.rmatrix import load_r_matrix

TINY = ["--preset", "tiny", "--set", "model.channels=[2,4,8]", "--set", "train.patch_size=[8,8,8]"]


@pytest.fixture(scope="module")
def trained(blob_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """Two seeds of replay on the blob dataset, tracked in a fresh sqlite store."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db"
    result = CliRunner().invoke(
        app,
        [
            "train",
            "--data",
            str(blob_dataset),
            "--strategy",
            "replay",
            "--seeds",
            "2",
            *TINY,
            "--epochs",
            "1",
            "--tracking-uri",
            uri,
            "--experiment",
            "contract",
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    return uri, "contract"


def parents(client: MlflowClient, experiment: str) -> list:
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], "tags.`mscl.strategy` = 'replay'")
    return sorted((r for r in runs if "mlflow.parentRunId" not in r.data.tags), key=lambda r: r.info.run_name)


def test_one_parent_run_per_seed_with_tags_and_params(trained: tuple[str, str]) -> None:
    uri, experiment = trained
    client = MlflowClient(uri)
    runs = parents(client, experiment)
    assert [r.info.run_name for r in runs] == ["replay-seed0", "replay-seed1"]
    for seed, run in enumerate(runs):
        tags, params = run.data.tags, run.data.params
        assert tags["mscl.seed"] == str(seed)
        assert tags["mscl.order"] == "Big,Mid,Small"
        assert len(tags["mscl.dataset_digest"]) == 64
        assert params["strategy.name"] == "replay"
        assert params["train.epochs"] == "1"
        assert run.info.status == "FINISHED"
        for metric in DEFAULT_METRICS:
            expected = {f"{k}/{metric}" for k in ("acc", "bwt", "fwt", "forgetting")} | {f"bwt/{metric}/Big"}
            assert expected | {f"zero_shot/{metric}/stage3"} <= set(run.data.metrics)
        rmatrix = load_r_matrix(client, run.info.run_id)
        assert list(rmatrix.metrics) == list(DEFAULT_METRICS)
        fdr = rmatrix.metric("lesion_fdr")
        assert not fdr.higher_is_better  # sign-aware BWT: positive means fewer false detections than before
        k = len(rmatrix.order) - 1
        expected_bwt = sum(fdr.r[i, rmatrix.centers.index(c)] - fdr.r[k, rmatrix.centers.index(c)]
                           for i, c in enumerate(rmatrix.order[:-1])) / k  # fmt: skip
        assert run.data.metrics["bwt/lesion_fdr"] == pytest.approx(expected_bwt, nan_ok=True)


def test_nested_stage_runs_hold_the_r_rows_and_checkpoints(trained: tuple[str, str]) -> None:
    uri, experiment = trained
    client = MlflowClient(uri)
    parent = parents(client, experiment)[0]
    exp = client.get_experiment_by_name(experiment)
    stages = client.search_runs(
        [exp.experiment_id],
        f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
        order_by=["tags.`mscl.stage`"],
    )
    assert sorted(s.info.run_name for s in stages) == ["stage1-Big", "stage2-Mid", "stage3-Small"]
    rmatrix = load_r_matrix(client, parent.info.run_id)
    for stage in stages:
        index = int(stage.data.tags["mscl.stage"]) - 1
        for metric in rmatrix.metrics:
            row = [stage.data.metrics[f"test/{metric}/{c}"] for c in rmatrix.centers]
            assert row == pytest.approx(list(rmatrix.values(metric)[index]), nan_ok=True)
        artifacts = {a.path for a in client.list_artifacts(stage.info.run_id)}
        assert {"checkpoint", "memory_manifest.json", "per_case_scores.json"} <= artifacts
        assert stage.data.metrics["strategy/state_bytes"] == 0  # replay's memory is rebuilt, not state
        history = client.get_metric_history(stage.info.run_id, "train/loss")
        assert [m.step for m in history] == [0]
        parts = {k: v for k, v in stage.data.metrics.items() if k.startswith("time/")}
        model_s = parts.pop("time/model_s")  # logging the stage's MLflow model, after the stage's seconds
        assert model_s > 0
        assert set(parts) == {f"time/{p}_s" for p in ("load", "cache", "train", "evaluate", "memory")}
        assert sum(parts.values()) == pytest.approx(stage.data.metrics["stage_seconds"])
        assert parts["time/train_s"] >= stage.data.metrics["train/seconds"]
    assert rmatrix.order == ["Big", "Mid", "Small"]
    assert rmatrix.metric().baseline is not None


def test_stage_runs_carry_the_study_tags_and_the_stage_params(
    trained: tuple[str, str], blob_dataset: Path
) -> None:
    uri, experiment = trained
    client = MlflowClient(uri)
    manifest = DatasetManifest.read(blob_dataset)
    for parent in parents(client, experiment):
        seed, options = parent.data.tags["mscl.seed"], strategy_options(parent.data.params)
        for stage in stage_runs(client, parent):
            tags, params = stage.data.tags, stage.data.params
            center = tags["mscl.center"]
            assert (tags["mscl.strategy"], tags["mscl.seed"]) == ("replay", seed)
            assert stage.info.run_name == f"stage{tags['mscl.stage']}-{center}"
            assert params == {
                "stage": tags["mscl.stage"],
                "center": center,
                "train_centers": center,
                "train_cases": str(len(manifest.cases_of(center, "train"))),
                "epochs": "1",
                "fresh": str(tags["mscl.stage"] == "1"),  # the first stage starts from the initial weights
                "seed": seed,
                **options,
            }
    assert options["strategy.name"] == "replay"


def strategy_options(params: dict[str, str]) -> dict[str, str]:
    return {key: value for key, value in params.items() if key.startswith("strategy.")}


def test_stage_runs_are_found_by_strategy_and_stage_and_parents_once(trained: tuple[str, str]) -> None:
    uri, experiment = trained
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    query = "tags.`mscl.strategy` = 'replay' and tags.`mscl.stage` = '2'"
    second = client.search_runs([exp.experiment_id], query)
    assert sorted((r.info.run_name, r.data.tags["mscl.seed"]) for r in second) == [
        ("stage2-Mid", "0"),
        ("stage2-Mid", "1"),
    ]
    found = read_parent_runs(client, experiment)
    assert [r.name for r in found.runs] == ["replay-seed0", "replay-seed1"] and found.skipped == []
    assert exp.tags[tree.EXPERIMENT_KIND_TAG] == tree.EXPERIMENT_KIND  # the new experiment's UI view
    assert "metrics.`bwt/dice`" in exp.tags[tree.RUNS_VIEW_TAG]


def test_the_continual_metrics_sort_first(trained: tuple[str, str]) -> None:
    """The UI lists metric columns in sorted order: the parents' continual metrics come first."""
    uri, experiment = trained
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    keys = sorted({key for run in runs for key in run.data.metrics})
    continual = [key for key in keys if key.split("/")[0] in ("acc", "bwt", "forgetting", "fwt")]
    assert continual and keys[: len(continual)] == continual


def test_unknown_strategy_and_missing_dataset_are_clear_errors(blob_dataset: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    bad = runner.invoke(app, ["train", "--data", str(blob_dataset), "--strategy", "magic", *TINY])
    assert bad.exit_code == 2
    assert "strategy: unknown strategy 'magic'; known: cumulative, " in bad.stderr  # and every registered one
    missing = runner.invoke(app, ["train", "--data", str(tmp_path / "nope"), "--strategy", "finetune", *TINY])
    assert missing.exit_code == 2
    assert "dataset directory not found" in missing.stderr
    order = runner.invoke(
        app,
        [
            "train",
            "--data",
            str(blob_dataset),
            "--strategy",
            "finetune",
            "--order",
            "Big,Nowhere",
            *TINY,
            "--tracking-uri",
            f"sqlite:///{tmp_path}/m.db",
        ],
    )
    assert order.exit_code == 2
    assert "unknown center(s) Nowhere" in order.stderr


def test_evaluate_scores_a_logged_checkpoint(
    trained: tuple[str, str], blob_dataset: Path, tmp_path: Path
) -> None:
    uri, experiment = trained
    client = MlflowClient(uri)
    parent = parents(client, experiment)[0]
    rmatrix = load_r_matrix(client, parent.info.run_id)
    out = tmp_path / "pred"
    result = CliRunner().invoke(
        app,
        [
            "evaluate",
            "--run-id",
            parent.info.run_id,
            "--data",
            str(blob_dataset),
            "--stage",
            "3",
            "--save-predictions",
            str(out),
            "--tracking-uri",
            uri,
        ],
    )
    assert result.exit_code == 0, result.output
    exp = client.get_experiment_by_name(experiment)
    [evaluation] = client.search_runs([exp.experiment_id], "tags.`mscl.kind` = 'evaluate'")
    assert evaluation.data.tags["mscl.source_run"] != parent.info.run_id  # the stage run was scored
    for metric in rmatrix.metrics:  # the checkpoint reproduces the last R row of every metric
        scored = [evaluation.data.metrics[f"test/{metric}/{c}"] for c in rmatrix.centers]
        assert scored == pytest.approx(list(rmatrix.values(metric)[2]), nan_ok=True)
    assert len(list(out.glob("*_pred.nii.gz"))) >= 3


def test_evaluate_unknown_run_is_a_clear_error(trained: tuple[str, str], blob_dataset: Path) -> None:
    uri, _ = trained
    result = CliRunner().invoke(
        app, ["evaluate", "--run-id", "0123456789abcdef", "--data", str(blob_dataset), "--tracking-uri", uri]
    )
    assert result.exit_code == 2
    assert "run '0123456789abcdef' not found" in result.stderr
