"""Reading back what a stage run logged: its checkpoint (verified), model, per-case scores and config."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import torch
import yaml
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from mscl.config import ExperimentConfig, validate_mapping
from mscl.errors import ConfigError, TrackingError
from mscl.protocol.results import CaseScores
from mscl.tracking import tree
from mscl.tracking.lineage import file_sha256


def get_run(client: MlflowClient, run_id: str) -> Run:
    """The run ``run_id``, or a clear error."""
    try:
        return client.get_run(run_id)
    except MlflowException:
        raise TrackingError(f"run {run_id!r} not found in {client.tracking_uri}") from None


def stage_run(client: MlflowClient, run_id: str, stage: int | None = None) -> Run:
    """The stage run to score: ``run_id`` itself when it is a stage, else stage ``stage`` (1-based,
    default the last) of the parent run ``run_id``."""
    run = get_run(client, run_id)
    if tree.STAGE_TAG in run.data.tags:
        if stage is not None and int(run.data.tags[tree.STAGE_TAG]) != stage:
            raise TrackingError(f"run {run_id} is stage {run.data.tags[tree.STAGE_TAG]}, not stage {stage}")
        return run
    stages = stage_runs(client, run)
    if not stages:
        raise TrackingError(f"run {run_id} has no stage runs with checkpoints")
    if stage is None:
        return stages[-1]
    chosen = [r for r in stages if int(r.data.tags[tree.STAGE_TAG]) == stage]
    if not chosen:
        raise TrackingError(f"run {run_id} has no stage {stage}; stages 1..{len(stages)}")
    return chosen[0]


def stage_runs(client: MlflowClient, parent: Run) -> list[Run]:
    """The stage runs nested under ``parent``, in stage order."""
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.`{tree.PARENT_TAG}` = '{parent.info.run_id}'", max_results=1000
    )
    return sorted(
        (r for r in children if tree.STAGE_TAG in r.data.tags), key=lambda r: int(r.data.tags[tree.STAGE_TAG])
    )


def run_config(client: MlflowClient, run: Run) -> ExperimentConfig:
    """The resolved configuration logged on a stage run's parent run (or on the parent run itself)."""
    owner = run.data.tags[tree.PARENT_TAG] if tree.STAGE_TAG in run.data.tags else run.info.run_id
    where = f"run {owner}: {tree.CONFIG_ARTIFACT}"
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(owner, tree.CONFIG_ARTIFACT, tmp)
        except (MlflowException, OSError):
            raise TrackingError(f"run {owner}: no {tree.CONFIG_ARTIFACT} artifact") from None
        try:
            mapping = yaml.safe_load(Path(path).read_bytes().decode("utf-8"))
        except (UnicodeDecodeError, yaml.YAMLError):
            raise TrackingError(f"{where} is not valid UTF-8 YAML") from None
    if not isinstance(mapping, dict):
        raise TrackingError(f"{where} is not a mapping")
    try:
        return validate_mapping(mapping, source=where)
    except ConfigError as exc:
        raise TrackingError(str(exc)) from None


def load_checkpoint(client: MlflowClient, run: Run) -> dict[str, Any]:
    """A stage run's ``checkpoint/model.pt`` payload, after checking it against its logged sha256.

    Raises:
        TrackingError: no checkpoint, no logged hash, a hash mismatch (corrupt or tampered file) or a file
            torch cannot read.
    """
    run_id = run.info.run_id
    logged = run.data.tags.get(tree.CHECKPOINT_SHA_TAG)
    if logged is None:
        raise TrackingError(f"run {run_id}: no {tree.CHECKPOINT_SHA_TAG} tag to verify the checkpoint with")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = Path(client.download_artifacts(run_id, tree.CHECKPOINT_ARTIFACT, tmp))
        except (MlflowException, OSError):
            raise TrackingError(f"run {run_id}: no {tree.CHECKPOINT_ARTIFACT} artifact") from None
        if file_sha256(path) != logged:
            raise TrackingError(f"run {run_id}: {tree.CHECKPOINT_ARTIFACT} does not match its logged sha256")
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises RuntimeError, pickle and zip errors for a bad file
            raise TrackingError(f"run {run_id}: {tree.CHECKPOINT_ARTIFACT} cannot be read ({exc})") from None
    if not isinstance(payload, dict) or "state_dict" not in payload:
        raise TrackingError(f"run {run_id}: {tree.CHECKPOINT_ARTIFACT} holds no state_dict")
    return payload


def load_stage_model(client: MlflowClient, run: Run, cfg: ExperimentConfig) -> torch.nn.Module:
    """The network of a stage run, weights loaded from its verified checkpoint."""
    from mscl.models.unet import build_model

    model = build_model(cfg.model)
    model.load_state_dict(load_checkpoint(client, run)["state_dict"])
    return model


def per_case_scores(client: MlflowClient, run: Run) -> CaseScores:
    """``{metric: {center: {case: score}}}`` of a stage run (a format 1 ``per_case_dice.json`` as Dice)."""
    run_id = run.info.run_id
    with tempfile.TemporaryDirectory() as tmp:
        for artifact, legacy in ((tree.PER_CASE_ARTIFACT, False), (tree.LEGACY_PER_CASE_ARTIFACT, True)):
            try:
                path = Path(client.download_artifacts(run_id, artifact, tmp))
            except (MlflowException, OSError):
                continue
            try:
                scores = json.loads(path.read_bytes().decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                raise TrackingError(f"run {run_id}: {artifact} is not valid UTF-8 JSON") from None
            return {"dice": scores} if legacy else scores
    raise TrackingError(f"run {run_id}: no {tree.PER_CASE_ARTIFACT} artifact")
