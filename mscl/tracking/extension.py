"""What ``mscl extend`` reads back from a finished study, and how it writes the grown study.

Everything is read and verified before a run is created: the parent run (FINISHED, a sequential kind), its
config, ``dataset.json`` and ``r_matrix.json``, its stage runs (one per R row), the last stage's checkpoint
and memory manifest, and the ``dataset.json`` of every stage an earlier extension added. The parent run is
changed only at the end, once every new stage has finished (:func:`log_extension`).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from mscl.config import ExperimentConfig
from mscl.data.manifest import CaseRecord, DatasetManifest, Split
from mscl.errors import ConfigError, TrackingError
from mscl.protocol.extend import ExtensionResult
from mscl.protocol.kinds import SEQUENTIAL_KINDS
from mscl.protocol.loop import StageCheckpoint
from mscl.tracking import tree
from mscl.tracking.artifacts import download_verified, log_bytes, log_json
from mscl.tracking.checkpoints import load_checkpoint, run_config, stage_runs
from mscl.tracking.resume import parent_run
from mscl.tracking.rmatrix import RMatrix, load_r_matrix, log_r_matrix
from mscl.tracking.runs import log_metrics, study_metrics


@dataclass(frozen=True)
class FinishedStudy:
    """A finished study as MLflow holds it, every artifact verified.

    Attributes:
        parent: the parent run.
        cfg: its logged configuration.
        seed: its seed.
        rmatrix: its ``r_matrix.json``; one row per stage run.
        stages: its stage runs, in stage order.
        datasets: every trained center's ``dataset.json``: the study's, or that of the extension that added
            the center.
        r_matrix_bytes: ``r_matrix.json`` as logged (kept as ``r_matrix.v<k>.json`` by the extension).
    """

    parent: Run
    cfg: ExperimentConfig
    seed: int
    rmatrix: RMatrix
    stages: list[Run]
    datasets: dict[str, DatasetManifest]
    r_matrix_bytes: bytes

    @property
    def run_id(self) -> str:
        """The parent run's id."""
        return self.parent.info.run_id

    @property
    def extensions(self) -> int:
        """How many extensions the study has had."""
        return int(self.parent.data.tags.get(tree.EXTENSIONS_TAG, "0"))

    def records(self, center: str, split: Split) -> list[CaseRecord]:
        """The ``split`` cases of a trained center, from the dataset its stage trained on."""
        return self.datasets[center].cases_of(center, split)

    def checkpoint(self) -> StageCheckpoint:
        """The last stage's weights and strategy state (checkpoint verified against its sha256)."""
        payload = load_checkpoint(MlflowClient(), self.stages[-1])
        return StageCheckpoint(payload["state_dict"], payload.get("strategy", {}))

    def memory_manifest(self) -> dict[str, Any] | None:
        """The last stage's ``memory_manifest.json`` (verified), or None when it logged none."""
        last = self.stages[-1]
        if tree.MEMORY_MANIFEST_SHA_TAG not in last.data.tags:
            return None
        value = _json_artifact(MlflowClient(), last, tree.MEMORY_MANIFEST_ARTIFACT)
        if not isinstance(value, dict):
            raise TrackingError(f"run {last.info.run_id}: {tree.MEMORY_MANIFEST_ARTIFACT} is not a mapping")
        return value


def read_finished_study(client: MlflowClient, run_id: str) -> FinishedStudy:
    """The finished study of parent run ``run_id``, or the one line saying why it cannot be extended.

    Raises:
        TrackingError: unknown run, not a parent run, an artifact missing or failing its sha256.
        ConfigError: a study still running or interrupted, or of a kind that is no stage sequence.
    """
    parent = parent_run(client, run_id)
    status, tags = parent.info.status, parent.data.tags
    if status != "FINISHED":
        raise ConfigError(
            f"cannot extend run {run_id}: it is {status}, not FINISHED; finish it first "
            f"(`mscl train --resume {run_id} --data DIR`)"
        )
    kind = tags.get(tree.KIND_TAG, "")
    if kind not in SEQUENTIAL_KINDS:
        raise ConfigError(
            f"cannot extend run {run_id}: its strategy {tags.get(tree.STRATEGY_TAG)} is of kind {kind}, "
            f"not a stage sequence ({', '.join(SEQUENTIAL_KINDS)})"
        )
    rmatrix = load_r_matrix(client, run_id, parent.info.artifact_uri, tags=tags)
    stages = stage_runs(client, parent)
    names = [r.info.run_name for r in stages]
    expected = [tree.stage_run_name(i, center) for i, center in enumerate(rmatrix.order)]
    if names != expected or any(r.info.status != "FINISHED" for r in stages):
        raise TrackingError(
            f"run {run_id}: its finished stage runs {names} do not match the rows of {tree.R_MATRIX_ARTIFACT}"
        )
    own = _manifest(client, parent)
    datasets = {
        r.data.tags[tree.CENTER_TAG]: _manifest(client, r) if tree.EXTENSION_TAG in r.data.tags else own
        for r in stages
    }
    with tempfile.TemporaryDirectory() as tmp:
        raw = download_verified(client, parent, tree.R_MATRIX_ARTIFACT, Path(tmp)).read_bytes()
    cfg = run_config(client, parent)
    return FinishedStudy(parent, cfg, int(tags[tree.SEED_TAG]), rmatrix, stages, datasets, raw)


def _json_artifact(client: MlflowClient, run: Run, artifact: str) -> Any:
    with tempfile.TemporaryDirectory() as tmp:
        data = download_verified(client, run, artifact, Path(tmp)).read_bytes()
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise TrackingError(f"run {run.info.run_id}: {artifact} is not valid UTF-8 JSON") from None


def _manifest(client: MlflowClient, run: Run) -> DatasetManifest:
    value = _json_artifact(client, run, tree.DATASET_ARTIFACT)
    try:
        return DatasetManifest.model_validate(value)
    except ValueError:
        raise TrackingError(
            f"run {run.info.run_id}: {tree.DATASET_ARTIFACT} is not a dataset manifest"
        ) from None


def grow_rmatrix(previous: RMatrix, result: ExtensionResult, new: list[str]) -> RMatrix:
    """``previous`` with the new centers' columns and the new stages' rows.

    The new columns of the earlier rows are missing (NaN: those models were never scored on the new
    centers), except in the last earlier row: the weights the extension started from, scored on the new
    centers before training (the zero-shot score). The baseline gains the untrained model's scores.
    """
    centers = [*previous.centers, *new]
    last = len(previous.order) - 1
    metrics: dict[str, dict[str, Any]] = {}
    for name, old in previous.metrics.items():
        rows: list[list[float | None]] = [[*row, *[None] * len(new)] for row in old.matrix]
        rows[last][len(previous.centers) :] = [result.before[name][c] for c in new]
        rows += [[s.scores[name][c] for c in centers] for s in result.stages]
        baseline = (
            None if old.baseline is None else [*old.baseline, *(result.untrained[name][c] for c in new)]
        )
        per_case: dict[int, Any] = dict(old.per_case or {})
        per_case[last] = {**per_case.get(last, {}), **result.before_per_case[name]}
        per_case |= {s.stage.index: s.per_case[name] for s in result.stages}
        metrics[name] = {
            **old.model_dump(exclude={"matrix", "baseline", "per_case"}),
            "matrix": rows,
            "baseline": baseline,
            "per_case": per_case,
        }
    order = [*previous.order, *(s.stage.center for s in result.stages)]
    grown = {**previous.model_dump(exclude={"metrics"}), "order": order, "centers": centers}
    return RMatrix.model_validate({**grown, "metrics": metrics})  # the grown matrix is checked whole


@dataclass(frozen=True)
class ExtensionRecord:
    """What one extension adds to the parent's tags."""

    number: int
    dataset: Path
    dataset_digest: str
    centers: list[str]
    stage_runs: list[str]


def log_extension(
    client: MlflowClient,
    study: FinishedStudy,
    result: ExtensionResult,
    grown: RMatrix,
    record: ExtensionRecord,
    manifest: DatasetManifest,
) -> None:
    """Write the extension into MLflow once its stages have all finished: the new stage runs' starting
    scores and dataset manifest, then the parent's archived and grown ``r_matrix.json``, continual
    metrics and tags (the run list last: until it is written, the new stage runs are no stages of the
    study)."""
    first, *_ = record.stage_runs
    starting = {
        **{tree.before_key(m, c): v for m, scores in result.before.items() for c, v in scores.items()},
        **{tree.untrained_key(m, c): v for m, scores in result.untrained.items() for c, v in scores.items()},
    }
    log_metrics(client, first, starting)
    for run_id in record.stage_runs:
        log_json(client, run_id, json.loads(manifest.model_dump_json()), tree.DATASET_ARTIFACT)
    parent = study.run_id
    log_bytes(client, parent, study.r_matrix_bytes, tree.archived_r_matrix_artifact(len(study.rmatrix.order)))
    log_r_matrix(client, parent, grown)
    log_metrics(client, parent, study_metrics(grown))
    n = record.number
    tags = {
        tree.FINISHED_STAGES_TAG: str(len(grown.order)),
        tree.ORDER_TAG: ",".join(grown.order),
        tree.extension_tag(n, "time"): datetime.now(UTC).isoformat(timespec="seconds"),
        tree.extension_tag(n, "centers"): ",".join(record.centers),
        tree.extension_tag(n, "dataset"): str(record.dataset.resolve()),
        tree.extension_tag(n, "dataset_digest"): record.dataset_digest,
        tree.extension_tag(n, "runs"): ",".join(record.stage_runs),
    }
    for key, value in tags.items():
        client.set_tag(parent, key, value)
    client.set_tag(parent, tree.EXTENSIONS_TAG, str(n))
