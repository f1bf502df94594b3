"""Nothing read back unverified: every artifact and resume point is checked against the sha256 recorded when
it was written; a mismatch is one line naming it (exit 2) and nothing is re-opened or created."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import pytest
from mlflow.entities import Run
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from mscl.api import train_study
from mscl.cli.main import app
from mscl.config import ExperimentConfig
from mscl.data.manifest import DatasetManifest
from mscl.errors import StudyInterrupted
from mscl.protocol.checkpoints import StateStore
from mscl.protocol.observers import StudyObserver
from mscl.strategies.base import StagePlan
from mscl.testing.strategies import contract_config
from mscl.tracking import tree
from mscl.tracking.audit import audit_run
from mscl.tracking.checkpoints import per_case_scores, run_config, stage_runs
from mscl.tracking.queries import is_parent
from mscl.tracking.resume import load_resume_info, parent_run
from mscl.tracking.rmatrix import load_r_matrix
from tests.tracking.test_audit import tampered

if TYPE_CHECKING:
    from tests.tracking.conftest import LoggedStudy


def artifact_file(client: MlflowClient, run_id: str, path: str) -> Path:
    """Where a run's artifact lies on disk (the sqlite store keeps artifacts in local folders)."""
    return Path(urlparse(client.get_run(run_id).info.artifact_uri).path) / path


def flip_byte(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1 :]


def truncate(data: bytes) -> bytes:
    return data[: len(data) // 2]


def invalid_utf8(data: bytes) -> bytes:
    return b"\xff\xfe" + data


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stderr.strip()


def one_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


# --- evaluate and report read a finished study ---------------------------------------------------------


def evaluate(study: LoggedStudy, data: Path, *extra: str) -> tuple[int, str]:
    args = ["evaluate", "--run-id", study.parent.info.run_id, "--data", str(data)]
    return invoke(*args, "--tracking-uri", study.uri, "--quiet", *extra)


def evaluate_runs(study: LoggedStudy) -> list[Run]:
    return study.client.search_runs([study.parent.info.experiment_id], "tags.`mscl.kind` = 'evaluate'")


@pytest.mark.parametrize("change", [flip_byte, truncate], ids=["flipped-byte", "truncated"])
def test_evaluate_refuses_a_corrupt_checkpoint(
    logged_study: LoggedStudy, blob_dataset: Path, change: Callable[[bytes], bytes]
) -> None:
    last = logged_study.stages[-1]
    before = len(evaluate_runs(logged_study))
    with tampered(artifact_file(logged_study.client, last.info.run_id, tree.CHECKPOINT_ARTIFACT), change):
        code, stderr = evaluate(logged_study, blob_dataset)
    assert code == 2
    assert one_line(stderr) == (
        f"error: run {last.info.run_id}: checkpoint/model.pt does not match its logged sha256 "
        "(mscl.checkpoint_sha256): the file is corrupt or was changed"
    )
    assert len(evaluate_runs(logged_study)) == before  # no evaluate run for a refused checkpoint


@pytest.mark.parametrize("change", [invalid_utf8, lambda t: t.replace(b"epochs: 1", b"epochs: 2")])
def test_evaluate_refuses_an_edited_config(
    logged_study: LoggedStudy, blob_dataset: Path, change: Callable[[bytes], bytes]
) -> None:
    run_id = logged_study.parent.info.run_id
    with tampered(artifact_file(logged_study.client, run_id, tree.CONFIG_ARTIFACT), change):
        code, stderr = evaluate(logged_study, blob_dataset)
    assert code == 2
    assert one_line(stderr).startswith(f"error: run {run_id}: config.yaml does not match its logged sha256")


def test_evaluate_refuses_a_crafted_case_id(
    logged_study: LoggedStudy, blob_dataset: Path, tmp_path: Path
) -> None:
    crafted = tmp_path / "crafted"
    shutil.copytree(blob_dataset, crafted)
    manifest = json.loads((crafted / "dataset.json").read_text())
    target = tmp_path / "elsewhere" / "owned"
    manifest["cases"][0]["id"] = str(target)  # an absolute path: <folder>/<id>_pred.nii.gz escapes
    (crafted / "dataset.json").write_text(json.dumps(manifest))
    code, stderr = evaluate(logged_study, crafted, "--save-predictions", str(tmp_path / "preds" / "x"))
    assert code == 2
    line = one_line(stderr)
    assert "invalid manifest at cases.0.id" in line and "may only hold letters, digits" in line
    assert not (tmp_path / "elsewhere").exists()


def test_evaluate_and_audit_name_a_truncated_chunk(
    logged_study: LoggedStudy, blob_dataset: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "dataset"
    shutil.copytree(blob_dataset, copy)
    case = next(c.id for c in DatasetManifest.read(copy).cases if c.split == "test")
    [chunk] = (copy / "volumes.zarr" / "images" / case).rglob("c/*/*/*")
    chunk.write_bytes(chunk.read_bytes()[:10])
    code, stderr = evaluate(logged_study, copy)
    assert code == 2
    assert one_line(stderr).startswith(f"error: {copy / 'volumes.zarr'}: images/{case} cannot be read")
    run_id = logged_study.parent.info.run_id
    result = CliRunner().invoke(
        app, ["audit", run_id, "--data", str(copy), "--tracking-uri", logged_study.uri], terminal_width=300
    )
    assert result.exit_code == 1  # the dataset check fails; no traceback
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    results = {r.name: r for r in audit_run(run_id, data_dir=copy, tracking_uri=logged_study.uri)}
    assert results["dataset"].detail == f"1 case(s) in {copy} fail sha256: {case}"


def test_report_refuses_an_edited_r_matrix(logged_study: LoggedStudy, tmp_path: Path) -> None:
    run_id = logged_study.parent.info.run_id
    path = artifact_file(logged_study.client, run_id, tree.R_MATRIX_ARTIFACT)
    args = ["report", "--experiment", "mscl", "--tracking-uri", logged_study.uri, "--no-log"]
    for change in (invalid_utf8, lambda t: t.replace(b'"dice"', b'"dice" ', 1)):
        with tampered(path, change):
            code, stderr = invoke(*args, "--out", str(tmp_path / "report"))
        assert code == 2
        assert one_line(stderr).startswith(
            f"error: run {run_id}: r_matrix.json does not match its logged sha256"
        )


def test_audit_names_an_r_matrix_that_is_not_utf8(logged_study: LoggedStudy) -> None:
    run_id = logged_study.parent.info.run_id
    with tampered(artifact_file(logged_study.client, run_id, tree.R_MATRIX_ARTIFACT), invalid_utf8):
        result = CliRunner().invoke(
            app, ["audit", run_id, "--tracking-uri", logged_study.uri], terminal_width=300
        )
    assert result.exit_code == 1  # a failed check, not a crash
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "r_matrix.json is not UTF-8 text" in result.output


def test_runs_logged_before_hashes_are_read_unverified(logged_study: LoggedStudy) -> None:
    """A run without ``mscl.artifact_hashes`` never had hashes for its artifacts: they are read as they are;
    its checkpoints always had one (``mscl.checkpoint_sha256``), which stays required."""
    client, parent, stage = logged_study.client, logged_study.parent, logged_study.stages[0]
    removed = {
        parent.info.run_id: [tree.HASHED_TAG, tree.CONFIG_SHA_TAG, tree.R_MATRIX_SHA_TAG],
        stage.info.run_id: [tree.HASHED_TAG, tree.PER_CASE_SHA_TAG],
    }
    try:
        for run_id, tags in removed.items():
            for tag in tags:
                client.delete_tag(run_id, tag)
        old_parent, old_stage = client.get_run(parent.info.run_id), client.get_run(stage.info.run_id)
        assert run_config(client, old_parent).train.epochs == 1
        assert load_r_matrix(client, parent.info.run_id).strategy == "replay"
        assert set(per_case_scores(client, old_stage)) == set(
            load_r_matrix(client, parent.info.run_id).metrics
        )
    finally:
        for run_id, tags in removed.items():
            logged = (parent if run_id == parent.info.run_id else stage).data.tags
            for tag in tags:
                client.set_tag(run_id, tag, logged[tag])
    with pytest.raises(Exception, match=r"no mscl\.per_case_sha256 tag"):  # the marker is back: tags required
        client.delete_tag(stage.info.run_id, tree.PER_CASE_SHA_TAG)
        try:
            per_case_scores(client, client.get_run(stage.info.run_id))
        finally:
            client.set_tag(stage.info.run_id, tree.PER_CASE_SHA_TAG, stage.data.tags[tree.PER_CASE_SHA_TAG])


def test_a_finished_run_is_not_resumed(logged_study: LoggedStudy, blob_dataset: Path) -> None:
    run_id = logged_study.parent.info.run_id
    before = logged_study.client.get_run(run_id).data.metrics
    code, stderr = invoke(
        "train", "--resume", run_id, "--data", str(blob_dataset), "--tracking-uri", logged_study.uri
    )
    assert code == 2
    assert (
        one_line(stderr)
        == f"error: cannot resume run {run_id}: it is FINISHED, there is nothing left to train"
    )
    assert logged_study.client.get_run(run_id).data.metrics == before


# --- resume reads an interrupted study --------------------------------------------------------------------


class InterruptAfterEpoch(StudyObserver):
    """Ctrl-C in the second epoch of stage 2: stage 1 finished in MLflow, stage 2 has the resume point of
    its first epoch (the second's is never written: the interrupt comes before it)."""

    def epoch_finished(self, stage: StagePlan, epoch: int, metrics: dict[str, float]) -> None:
        if stage.index == 1 and epoch == 1:
            raise KeyboardInterrupt


@dataclass(frozen=True)
class Interrupted:
    cfg: ExperimentConfig
    client: MlflowClient
    parent: Run
    stages: list[Run]

    @property
    def store(self) -> StateStore:
        return StateStore(self.cfg.train.checkpoint_dir / self.parent.info.run_id)


@pytest.fixture(scope="module")
def interrupted(blob_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Interrupted:
    cfg = contract_config("replay", tmp_path_factory.mktemp("interrupted"), {"memory": {"backend": "hdf5"}})
    with pytest.raises(StudyInterrupted):
        train_study(blob_dataset, cfg, quiet=True, observers=[InterruptAfterEpoch()])
    client = MlflowClient(cfg.tracking.uri)
    experiment = client.get_experiment_by_name(cfg.tracking.experiment)
    assert experiment is not None
    [parent] = [run for run in client.search_runs([experiment.experiment_id]) if is_parent(run)]
    assert parent.info.status == "KILLED"
    return Interrupted(cfg, client, parent, stage_runs(client, parent))


def resume(study: Interrupted, data: Path) -> tuple[int, str]:
    run_id = study.parent.info.run_id
    return invoke(
        "train", "--resume", run_id, "--data", str(data), "--tracking-uri", str(study.cfg.tracking.uri)
    )


@pytest.mark.parametrize(
    ("stage", "artifact", "change"),
    [
        (0, tree.CHECKPOINT_ARTIFACT, flip_byte),
        (0, tree.PER_CASE_ARTIFACT, lambda text: text.replace(b"0", b"1", 1)),
        (None, tree.CONFIG_ARTIFACT, lambda text: text.replace(b"epochs: 2", b"epochs: 3")),
    ],
    ids=["checkpoint", "per-case-scores", "config"],
)
def test_resume_refuses_a_corrupt_artifact(
    interrupted: Interrupted,
    blob_dataset: Path,
    stage: int | None,
    artifact: str,
    change: Callable[[bytes], bytes],
) -> None:
    run_id = interrupted.parent.info.run_id if stage is None else interrupted.stages[stage].info.run_id
    with tampered(artifact_file(interrupted.client, run_id, artifact), change):
        code, stderr = resume(interrupted, blob_dataset)
    assert code == 2
    assert one_line(stderr).startswith(f"error: run {run_id}: {artifact} does not match its logged sha256")
    assert interrupted.client.get_run(interrupted.parent.info.run_id).info.status == "KILLED"  # not re-opened


@pytest.mark.parametrize("change", [flip_byte, truncate], ids=["flipped-byte", "truncated"])
def test_resume_refuses_a_corrupt_resume_point(
    interrupted: Interrupted, blob_dataset: Path, change: Callable[[bytes], bytes]
) -> None:
    path = interrupted.store.path(1)
    assert path.is_file()
    with tampered(path, change):
        code, stderr = resume(interrupted, blob_dataset)
    assert code == 2
    assert one_line(stderr).startswith(f"error: {path}: resume point ")
    assert "delete it to restart stage 2 from its beginning" in stderr
    assert interrupted.client.get_run(interrupted.parent.info.run_id).info.status == "KILLED"


def test_a_resume_point_of_a_finished_stage_is_removed_on_resume(interrupted: Interrupted) -> None:
    """A kill between the end of a stage run and the removal of its resume point left it behind."""
    store = interrupted.store
    shutil.copy(store.path(1), store.path(0))
    plan = [StagePlan(i, c, (c,), i == 0) for i, c in enumerate(["Big", "Mid", "Small"])]
    info = load_resume_info(
        interrupted.client, parent_run(interrupted.client, interrupted.parent.info.run_id), plan, store
    )
    assert sorted(info.point.finished) == [0]
    assert info.point.partial is not None and info.point.partial.index == 1
    assert not store.path(0).exists() and store.path(1).is_file()


def test_resume_refuses_seeds(interrupted: Interrupted, blob_dataset: Path) -> None:
    run_id = interrupted.parent.info.run_id
    for extra in (["--seeds", "3"], ["--seed-list", "4"], ["--set", "protocol.seeds=[1]"]):
        uri = str(interrupted.cfg.tracking.uri)
        code, stderr = invoke(
            "train", "--resume", run_id, "--data", str(blob_dataset), "--tracking-uri", uri, *extra
        )
        assert code == 2, stderr
        assert "a resumed run" in one_line(stderr)
    assert interrupted.client.get_run(run_id).info.status == "KILLED"
