"""mscl extend: a finished study goes on with a new center, from its checkpoint and its memory store alone."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from mscl.api import train_study
from mscl.config import ExperimentConfig, load_config
from mscl.data.manifest import DatasetManifest
from mscl.errors import ConfigError, MemoryCorrupted, StudyInterrupted
from mscl.extend import extend_study, extension_config
from mscl.predict.settings import SegmenterSettings
from mscl.protocol.observers import StudyObserver
from mscl.strategies.base import StagePlan
from mscl.testing.data import build_blob_dataset
from mscl.testing.strategies import contract_config
from mscl.tracking import tree
from mscl.tracking.audit import check_r_matrix
from mscl.tracking.checkpoints import get_run, stage_runs
from mscl.tracking.extension import read_finished_study
from mscl.tracking.models import resolve_model
from mscl.tracking.rmatrix import RMatrix, load_r_matrix

EARLIER = ["Big", "Mid"]
STUDY = {"train": {"epochs": 1}, "memory": {"backend": "zarr"}, "protocol": {"centers": EARLIER}}


@dataclass
class Study:
    """A finished two-center study in its own folder, and its R matrices before any extension."""

    cfg: ExperimentConfig
    run_id: str
    before: RMatrix

    @property
    def client(self) -> MlflowClient:
        return MlflowClient(self.cfg.tracking.uri)


def same(a: RMatrix, b: RMatrix) -> bool:
    """Equal R matrices, a missing score (NaN) equal to a missing score."""
    return a.model_dump_json() == b.model_dump_json()


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The study's dataset (Big, Mid, Small) and the new hospitals' own datasets (Small; Extra)."""
    root = tmp_path_factory.mktemp("extend-data")
    return {
        "full": build_blob_dataset(root / "full"),
        "small": build_blob_dataset(root / "small", ["Small"]),
        "extra": build_blob_dataset(root / "extra", ["Extra"]),
    }


@pytest.fixture(scope="module")
def studies(data: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Study]:
    """Two identical studies of replay (zarr memory) and of fine-tuning; then the study's dataset is moved
    out of reach (``full`` -> ``gone``): only the checkpoints and the memory stores are left."""
    found = {}
    for name in ("replay-a", "replay-b", "finetune-a", "finetune-b"):
        cfg = contract_config(name.split("-")[0], tmp_path_factory.mktemp(name), STUDY)
        train_study(data["full"], cfg, quiet=True)
        client = MlflowClient(cfg.tracking.uri)
        [parent] = client.search_runs(
            [client.get_experiment_by_name("contract").experiment_id],
            "tags.`mscl.seed` = '0' and tags.`mscl.stage` IS NULL",
        )
        found[name] = Study(cfg, parent.info.run_id, load_r_matrix(client, parent.info.run_id))
    data["full"].rename(data["full"].with_name("gone"))
    data["gone"] = data["full"].with_name("gone")
    return found


@pytest.fixture(scope="module")
def extended(studies: dict[str, Study], data: dict[str, Path]) -> dict[str, RMatrix]:
    """Every study extended with Small from its own dataset directory."""
    return {
        name: extend_study(s.run_id, data["small"], tracking_uri=s.cfg.tracking.uri, quiet=True)
        for name, s in studies.items()
    }


def test_replay_extension_grows_the_study(studies: dict[str, Study], extended: dict[str, RMatrix]) -> None:
    study, grown = studies["replay-a"], extended["replay-a"]
    client = study.client
    parent = get_run(client, study.run_id)
    stages = stage_runs(client, parent)
    assert [r.info.run_name for r in stages] == ["stage1-Big", "stage2-Mid", "stage3-Small"]
    assert {r.info.status for r in stages} == {"FINISHED"} and parent.info.status == "FINISHED"
    assert same(load_r_matrix(client, study.run_id), grown)
    assert grown.order == grown.centers == ["Big", "Mid", "Small"]
    for metric in grown.metrics:
        r = grown.values(metric)
        np.testing.assert_array_equal(r[:2, :2], study.before.values(metric))  # earlier rows unchanged
        assert np.isnan(r[0, 2]) and not np.isnan(r[1, 2])  # never scored; zero-shot before
        assert np.isnan(r[2, :2]).all() and not np.isnan(r[2, 2])  # earlier test splits out of reach
    archived = client.download_artifacts(study.run_id, tree.archived_r_matrix_artifact(2))
    assert same(RMatrix.from_json(Path(archived).read_text()), study.before)
    tags = parent.data.tags
    assert tags[tree.EXTENSIONS_TAG] == "1" and tags[tree.extension_tag(1, "centers")] == "Small"
    assert (
        tags[tree.FINISHED_STAGES_TAG] == "3" and tags[tree.extension_tag(1, "runs")] == stages[2].info.run_id
    )
    assert check_r_matrix(client, parent, stages).passed
    # the memory came from the store: the earlier centers' samples are there, their dataset is not
    manifest = json.loads(
        Path(client.download_artifacts(stages[2].info.run_id, "memory_manifest.json")).read_text()
    )
    assert {row["center"] for row in manifest["samples"]} == {"Big", "Mid", "Small"}
    earlier = json.loads(
        Path(client.download_artifacts(stages[1].info.run_id, "memory_manifest.json")).read_text()
    )
    kept = {row["key"]: row["image_sha256"] for row in manifest["samples"] if row["center"] != "Small"}
    assert kept == {row["key"]: row["image_sha256"] for row in earlier["samples"]}


def test_extension_stage_runs_are_tagged_like_the_studys(
    studies: dict[str, Study], extended: dict[str, RMatrix], data: dict[str, Path]
) -> None:
    client = studies["replay-a"].client
    first, added = (stage_runs(client, get_run(client, studies["replay-a"].run_id))[i] for i in (0, 2))
    study_tags = (tree.STRATEGY_TAG, tree.SEED_TAG, tree.STAGE_TAG, tree.CENTER_TAG)
    assert [added.data.tags[tag] for tag in study_tags] == ["replay", "0", "3", "Small"]
    assert set(added.data.params) == set(first.data.params)  # the same stage params, by the same function
    train_cases = DatasetManifest.read(data["small"]).cases_of("Small", "train")
    assert (added.data.params["stage"], added.data.params["train_cases"]) == ("3", str(len(train_cases)))


@pytest.mark.parametrize("strategy", ["replay", "finetune"])
def test_extending_the_same_study_twice_gives_identical_rows(
    extended: dict[str, RMatrix], strategy: str
) -> None:
    a, b = extended[f"{strategy}-a"], extended[f"{strategy}-b"]
    for metric in a.metrics:
        np.testing.assert_array_equal(a.values(metric), b.values(metric))


def test_a_third_hospital_with_the_earlier_test_splits(
    studies: dict[str, Study], extended: dict[str, RMatrix], data: dict[str, Path]
) -> None:
    study = studies["replay-a"]
    uri = study.cfg.tracking.uri
    grown = extend_study(study.run_id, data["extra"], eval_data=data["gone"], tracking_uri=uri, quiet=True)
    assert grown.order == ["Big", "Mid", "Small", "Extra"]
    r = grown.values()
    np.testing.assert_array_equal(r[:3, :3], extended["replay-a"].values())
    assert not np.isnan(r[3]).any()  # every earlier center scored on the test split found in --eval-data
    parent = get_run(study.client, study.run_id)
    assert parent.data.tags[tree.EXTENSIONS_TAG] == "2"
    assert [r.info.run_name for r in stage_runs(study.client, parent)][-1] == "stage4-Extra"
    assert check_r_matrix(study.client, parent, stage_runs(study.client, parent)).passed


def test_a_tampered_memory_store_is_refused(
    studies: dict[str, Study], extended: dict[str, RMatrix], data: dict[str, Path]
) -> None:
    study = studies["replay-b"]
    store = study.cfg.memory.path / "replay-seed0.zarr"  # type: ignore[operator]
    chunk = max((p for p in (store / "samples").rglob("*") if p.is_file() and p.suffix != ".json"), key=str)
    raw = chunk.read_bytes()
    chunk.write_bytes(raw[:40] + bytes([raw[40] ^ 0xFF]) + raw[41:])
    runs_before = len(study.client.search_runs([get_run(study.client, study.run_id).info.experiment_id]))
    try:
        with pytest.raises(MemoryCorrupted, match="fail their checksums"):
            extend_study(study.run_id, data["extra"], tracking_uri=study.cfg.tracking.uri, quiet=True)
    finally:
        chunk.write_bytes(raw)
    parent = get_run(study.client, study.run_id)
    assert len(study.client.search_runs([parent.info.experiment_id])) == runs_before
    assert same(load_r_matrix(study.client, study.run_id), extended["replay-b"])


class InterruptFirstEpoch(StudyObserver):
    def epoch_finished(self, stage: StagePlan, epoch: int, metrics: dict[str, float]) -> None:
        raise KeyboardInterrupt


def test_an_interrupted_extension_leaves_the_study_as_it_was(
    studies: dict[str, Study], extended: dict[str, RMatrix], data: dict[str, Path]
) -> None:
    study = studies["finetune-b"]
    client, uri = study.client, study.cfg.tracking.uri
    tags = get_run(client, study.run_id).data.tags
    with pytest.raises(StudyInterrupted, match="as it was"):
        extend_study(
            study.run_id, data["extra"], tracking_uri=uri, quiet=True, observers=[InterruptFirstEpoch()]
        )
    parent = get_run(client, study.run_id)
    assert parent.data.tags == tags and parent.info.status == "FINISHED"
    assert same(load_r_matrix(client, study.run_id), extended["finetune-b"])
    children = client.search_runs([parent.info.experiment_id], f"tags.`{tree.EXTENSION_TAG}` = '2'")
    assert [(r.info.run_name, r.info.status) for r in children] == [("stage4-Extra", "KILLED")]
    assert len(stage_runs(client, parent)) == 3  # the killed stage is no stage of the study
    grown = extend_study(study.run_id, data["extra"], tracking_uri=uri, quiet=True)  # and it goes on
    assert grown.order == ["Big", "Mid", "Small", "Extra"]


def test_a_missing_memory_store_is_refused(
    studies: dict[str, Study], extended: dict[str, RMatrix], data: dict[str, Path]
) -> None:
    study = studies["replay-b"]
    store = study.cfg.memory.path / "replay-seed0.zarr"  # type: ignore[operator]
    moved = store.rename(store.with_name("moved.zarr"))
    try:
        with pytest.raises(ConfigError, match=r"replay memory store .* not found; pass --memory-path"):
            extend_study(study.run_id, data["extra"], tracking_uri=study.cfg.tracking.uri, quiet=True)
        assert not store.exists()  # nothing created in its place
    finally:
        moved.rename(store)


def model_settings(uri: str) -> SegmenterSettings:
    folder = Path(mlflow.artifacts.download_artifacts(uri))
    return SegmenterSettings.read(folder / "artifacts" / "settings.json")


def test_an_extension_logs_its_models_and_registers_the_grown_study(
    studies: dict[str, Study], extended: dict[str, RMatrix], data: dict[str, Path]
) -> None:
    study = studies["finetune-a"]
    client = study.client
    register = {"tracking": {"register_model": "grown", "model_alias": "newest"}}
    extend_study(
        study.run_id, data["extra"], tracking_uri=study.cfg.tracking.uri, quiet=True, overrides=[register]
    )
    stages = stage_runs(client, get_run(client, study.run_id))
    assert [r.info.run_name for r in stages[2:]] == ["stage3-Small", "stage4-Extra"]
    ref = resolve_model(client, "models:/grown@newest")
    assert (ref.run_id, ref.model_id) == (stages[-1].info.run_id, stages[-1].data.tags[tree.MODEL_ID_TAG])
    settings = model_settings(ref.uri)
    assert settings.centers == ["Big", "Mid", "Small", "Extra"] and settings.stage == 4  # all the weights saw
    manifests = [DatasetManifest.read(data[name]) for name in ("gone", "small", "extra")]
    assert settings.contrasts == sorted(
        {c for m in manifests for center in m.centers for c in center.contrasts}
    )
    small = model_settings(f"models:/{stages[2].data.tags[tree.MODEL_ID_TAG]}")
    assert small.centers == ["Big", "Mid", "Small"]


def test_an_extension_registers_only_when_asked(studies: dict[str, Study]) -> None:
    study = read_finished_study(studies["replay-a"].client, studies["replay-a"].run_id)
    registered = replace(
        study, cfg=load_config(overrides=[{"tracking": {"register_model": "x"}}], base=study.cfg)
    )
    cfg, changes = extension_config(registered, [])
    assert cfg.tracking.register_model is None and changes == []  # tracking settings are no study change
    asked, _ = extension_config(registered, [{"tracking": {"register_model": "y"}}])
    assert asked.tracking.register_model == "y"
