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
from mscl.tracking.artifacts import check_hash, download_verified, sha256_hex

LEGACY_METRICS = ("dice",)
"""What a study logged before ``eval.metrics`` existed scored (format 1 runs): resumed and evaluated alike."""


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
    """The stage runs nested under ``parent``, in stage order.

    A stage run of an ``mscl extend`` that did not complete (not listed in the parent's
    ``mscl.extension<n>.runs`` tag) is no stage of the study and left out.
    """
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.`{tree.PARENT_TAG}` = '{parent.info.run_id}'", max_results=1000
    )
    tags = parent.data.tags
    extended = {
        run_id
        for n in range(1, int(tags.get(tree.EXTENSIONS_TAG, "0")) + 1)
        for run_id in tags.get(tree.extension_tag(n, "runs"), "").split(",")
    }
    return sorted(
        (
            r
            for r in children
            if tree.STAGE_TAG in r.data.tags
            and (tree.EXTENSION_TAG not in r.data.tags or r.info.run_id in extended)
        ),
        key=lambda r: int(r.data.tags[tree.STAGE_TAG]),
    )


def run_config(client: MlflowClient, run: Run) -> ExperimentConfig:
    """The resolved configuration logged on a stage run's parent run (or on the parent run itself)."""
    owner = get_run(client, run.data.tags[tree.PARENT_TAG]) if tree.STAGE_TAG in run.data.tags else run
    where = f"run {owner.info.run_id}: {tree.CONFIG_ARTIFACT}"
    with tempfile.TemporaryDirectory() as tmp:
        path = download_verified(client, owner, tree.CONFIG_ARTIFACT, Path(tmp))
        try:
            mapping = yaml.safe_load(Path(path).read_bytes().decode("utf-8"))
        except (UnicodeDecodeError, yaml.YAMLError):
            raise TrackingError(f"{where} is not valid UTF-8 YAML") from None
    if not isinstance(mapping, dict):
        raise TrackingError(f"{where} is not a mapping")
    evaluation = mapping.get("eval")
    if isinstance(evaluation, dict) and "metrics" not in evaluation:  # logged before eval.metrics existed
        mapping["eval"] = {**evaluation, "metrics": list(LEGACY_METRICS)}
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
    with tempfile.TemporaryDirectory() as tmp:
        path = download_verified(client, run, tree.CHECKPOINT_ARTIFACT, Path(tmp))
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
    try:
        model.load_state_dict(load_checkpoint(client, run)["state_dict"])
    except (RuntimeError, KeyError, TypeError) as exc:  # weights of another network than cfg.model describes
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TrackingError(
            f"run {run.info.run_id}: {tree.CHECKPOINT_ARTIFACT} does not fit the model ({first})"
        ) from None
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
            data = path.read_bytes()
            # per_case_dice.json (format 1 runs) was only ever written unhashed: there is nothing to check
            if not legacy:
                check_hash(run_id, run.data.tags, artifact, sha256_hex(data))
            try:
                scores = json.loads(data.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                raise TrackingError(f"run {run_id}: {artifact} is not valid UTF-8 JSON") from None
            return {"dice": scores} if legacy else scores
    raise TrackingError(f"run {run_id}: no {tree.PER_CASE_ARTIFACT} artifact")
