"""Finding a logged stage checkpoint and rebuilding its model and configuration."""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
import yaml
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from mscl.config import ExperimentConfig
from mscl.errors import TrackingError

PARENT_TAG = "mlflow.parentRunId"


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
    if "mscl.stage" in run.data.tags:
        if stage is not None and int(run.data.tags["mscl.stage"]) != stage:
            raise TrackingError(f"run {run_id} is stage {run.data.tags['mscl.stage']}, not stage {stage}")
        return run
    stages = stage_runs(client, run)
    if not stages:
        raise TrackingError(f"run {run_id} has no stage runs with checkpoints")
    if stage is None:
        return stages[-1]
    chosen = [r for r in stages if int(r.data.tags["mscl.stage"]) == stage]
    if not chosen:
        raise TrackingError(f"run {run_id} has no stage {stage}; stages 1..{len(stages)}")
    return chosen[0]


def stage_runs(client: MlflowClient, parent: Run) -> list[Run]:
    """The stage runs nested under ``parent``, in stage order."""
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.`{PARENT_TAG}` = '{parent.info.run_id}'", max_results=1000
    )
    return sorted(
        (r for r in children if "mscl.stage" in r.data.tags), key=lambda r: int(r.data.tags["mscl.stage"])
    )


def run_config(client: MlflowClient, run: Run) -> ExperimentConfig:
    """The resolved configuration logged on a stage run's parent run (or on the parent run itself)."""
    owner = run.data.tags[PARENT_TAG] if "mscl.stage" in run.data.tags else run.info.run_id
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(owner, "config.yaml", tmp)
        except (MlflowException, OSError):
            raise TrackingError(f"run {owner}: no config.yaml artifact") from None
        return ExperimentConfig.model_validate(yaml.safe_load(Path(path).read_text(encoding="utf-8")))


def load_stage_model(client: MlflowClient, run: Run, cfg: ExperimentConfig) -> torch.nn.Module:
    """The network of a stage run, weights loaded from its ``checkpoint/model.pt``."""
    from mscl.models.unet import build_model

    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run.info.run_id, "checkpoint/model.pt", tmp)
        except (MlflowException, OSError):
            raise TrackingError(f"run {run.info.run_id}: no checkpoint/model.pt artifact") from None
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    model = build_model(cfg.model)
    model.load_state_dict(checkpoint["state_dict"])
    return model
