"""The study run: one MLflow run over a grid, holding the grid and every cell's parent run under it.

``study.json`` (hashed like every artifact mscl reads back) records the settings, the dataset and each
cell's resolved configuration, so that ``mscl study --resume`` runs exactly the grid it was started with.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mlflow.entities import Param, RunTag
from mlflow.tracking import MlflowClient

from mscl.config import ExperimentConfig, TrackingConfig, validate_mapping
from mscl.errors import ConfigError, TrackingError
from mscl.study.cell import CellOutcome
from mscl.study.grid import Cell, StudySettings, study_settings
from mscl.tracking import tree

GRID_FORMAT = 1


@dataclass(frozen=True)
class Grid:
    """What a study runs: its settings, its dataset and digest, and every cell's configuration."""

    settings: StudySettings
    data_dir: Path
    digest: str
    configs: dict[Cell, ExperimentConfig]
    outcomes: list[CellOutcome] = field(default_factory=list)

    def tracking(self) -> TrackingConfig:
        """The tracking settings every cell shares (one store and experiment holds the whole grid).

        Raises:
            ConfigError: cells with different tracking settings.
        """
        settings = {cfg.tracking.model_dump_json(): cfg.tracking for cfg in self.configs.values()}
        if len(settings) != 1:
            raise ConfigError("every study of a grid must use the same tracking settings (tracking.*)")
        return next(iter(settings.values()))

    def with_tracking_uri(self, uri: str) -> Grid:
        """The grid with every cell's tracking URI resolved to ``uri``."""
        configs = {
            cell: cfg.model_copy(update={"tracking": cfg.tracking.model_copy(update={"uri": uri})})
            for cell, cfg in self.configs.items()
        }
        return replace(self, configs=configs)

    def to_json(self) -> dict[str, Any]:
        """The ``study.json`` document."""
        return {
            "format": GRID_FORMAT,
            "settings": self.settings.model_dump(mode="json"),
            "data": str(self.data_dir),
            "digest": self.digest,
            "cells": [
                {
                    "strategy": c.strategy,
                    "seed": c.seed,
                    "order": c.order,
                    "config": cfg.model_dump(mode="json"),
                }
                for c, cfg in self.configs.items()
            ],
        }

    @classmethod
    def from_json(cls, document: dict[str, Any], source: str) -> Grid:
        """Read a ``study.json`` document back, every cell's configuration validated again."""
        if document.get("format") != GRID_FORMAT:
            raise TrackingError(f"{source}: unknown study.json format {document.get('format')!r}")
        configs = {
            Cell(item["strategy"], int(item["seed"]), item["order"]): validate_mapping(item["config"], source)
            for item in document["cells"]
        }
        settings = study_settings(document["settings"], source)
        return cls(settings, Path(document["data"]), str(document["digest"]), configs)


def create_study_run(client: MlflowClient, experiment_id: str, grid: Grid) -> str:
    """Create the study run (nested under the ``mlflow run`` project run, if any) with the grid logged."""
    from mscl.tracking.artifacts import log_json
    from mscl.tracking.lineage import project_run_id

    tags = {
        tree.KIND_TAG: tree.STUDY_KIND,
        tree.STUDY_CELLS_TAG: str(len(grid.configs)),
        tree.STUDY_FINISHED_TAG: "0",
        tree.DATASET_TAG: str(grid.data_dir),
        tree.DATASET_DIGEST_TAG: grid.digest,
        tree.HASHED_TAG: tree.HASHED_VERSION,
    }
    project = project_run_id()
    if project:
        tags |= {tree.PARENT_TAG: project, tree.PROJECT_RUN_TAG: project}
    run = client.create_run(experiment_id, run_name=tree.STUDY_RUN_NAME, tags=tags)
    settings = grid.settings
    params = {
        "strategies": ",".join(settings.strategies),
        "seeds": ",".join(map(str, settings.seeds)),
        "orders": ";".join(settings.orders),
        "cells": str(len(grid.configs)),
        "max_retries": str(settings.max_retries),
    }
    client.log_batch(run.info.run_id, params=[Param(k, v[:6000]) for k, v in params.items()])
    log_json(client, run.info.run_id, grid.to_json(), tree.STUDY_GRID_ARTIFACT)
    return str(run.info.run_id)


def read_study_run(client: MlflowClient, run_id: str) -> tuple[str, Grid]:
    """The experiment id and the verified grid of the study run ``run_id``.

    Raises:
        ConfigError: the run is not a study run, or it has FINISHED.
        ArtifactCorrupted: ``study.json`` does not match its logged sha256.
    """
    import tempfile

    from mscl.tracking.artifacts import download_verified
    from mscl.tracking.checkpoints import get_run

    run = get_run(client, run_id)
    if run.data.tags.get(tree.KIND_TAG) != tree.STUDY_KIND:
        raise ConfigError(f"run {run_id} is not a study run (`mscl study --resume` takes a study run id)")
    if run.info.status == "FINISHED":
        raise ConfigError(f"cannot resume study {run_id}: it is FINISHED, every cell of it has finished")
    with tempfile.TemporaryDirectory() as folder:
        path = download_verified(client, run, tree.STUDY_GRID_ARTIFACT, Path(folder))
        document = json.loads(path.read_text(encoding="utf-8"))
    return run.info.experiment_id, Grid.from_json(document, f"run {run_id} {tree.STUDY_GRID_ARTIFACT}")


def record_progress(client: MlflowClient, run_id: str, finished: int) -> None:
    """Tag the study run with how many of its cells have finished."""
    client.log_batch(run_id, tags=[RunTag(tree.STUDY_FINISHED_TAG, str(finished))])


def end_cell_runs(client: MlflowClient, experiment_id: str, study_run_id: str, status: str) -> None:
    """End every RUNNING run of the study (stage runs first, then their parents) with ``status``."""
    parents = client.search_runs([experiment_id], f"tags.`{tree.STUDY_RUN_TAG}` = '{study_run_id}'")
    for parent in parents:
        stages = client.search_runs([experiment_id], f"tags.`{tree.PARENT_TAG}` = '{parent.info.run_id}'")
        for run in [*stages, parent]:
            if run.info.status == "RUNNING":
                client.set_terminated(run.info.run_id, status)
