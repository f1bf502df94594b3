"""One cell of a study grid, as a worker runs it: train it, resume it, or report it finished.

:func:`run_cell` is what a Ray task executes. It finds the cell's parent run by its tags (nested under the
study run, tagged with the cell): a FINISHED one is reported as it is, an unfinished one (its worker died,
the study was interrupted) goes through the resume path of ``mscl train --resume``, and a cell without a
run is trained by :func:`mscl.api.train_study`. So a retried task ends with the R matrix an uninterrupted
run gives, and ``mscl study --resume`` runs only what is left.

A user error (:class:`mscl.errors.MsclError`) comes back as a failed outcome and is not retried; only a
worker that dies (killed, out of memory, node lost) is retried, by Ray.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mscl.config import ExperimentConfig
from mscl.errors import ConfigError, MsclError
from mscl.study.grid import Cell
from mscl.tracking import tree

if TYPE_CHECKING:
    from mlflow.entities import Run
    from mlflow.tracking import MlflowClient


@dataclass(frozen=True)
class CellRequest:
    """Everything a worker needs to run one cell, picklable."""

    cell: Cell
    config: ExperimentConfig
    data_dir: Path
    digest: str
    study_run_id: str
    experiment_id: str
    workdir: Path


@dataclass(frozen=True)
class CellOutcome:
    """How a cell ended: its parent run, its training minutes (all attempts), headline continual metrics,
    or the error."""

    cell: Cell
    run_id: str | None
    minutes: float
    acc: float | None = None
    bwt: float | None = None
    error: str | None = None
    exit_code: int = 0

    @property
    def ok(self) -> bool:
        """Whether the cell's parent run finished."""
        return self.error is None

    def line(self) -> str:
        """The one line printed when the cell ends."""
        cell = self.cell
        where = f"{cell.strategy} seed {cell.seed} {cell.order}: {self.minutes:.1f} min"
        if not self.ok:
            return f"{where}, failed: {self.error}"
        values = (("ACC", self.acc, ".3f"), ("BWT", self.bwt, "+.3f"))
        shown = [f"{name} {v:{spec}}" for name, v, spec in values if v is not None and not math.isnan(v)]
        return f"{where}, {', '.join(shown) or 'no metrics'} (run {(self.run_id or '')[:8]})"


def run_cell(request: CellRequest) -> CellOutcome:
    """Train, resume or read back ``request.cell``; see the module docstring."""
    started = time.perf_counter()
    try:
        run_id = _train_or_resume(request)
        return _finished_outcome(request, run_id, started)
    except MsclError as exc:
        return _failed(request.cell, started, str(exc), exc.exit_code)
    except Exception as exc:
        return _failed(request.cell, started, f"{type(exc).__name__}: {exc}", 1)


def _train_or_resume(request: CellRequest) -> str:
    """The cell's parent run id once it has FINISHED."""
    from mlflow.tracking import MlflowClient

    from mscl.api import resume_study, train_study
    from mscl.data.dataset import PreparedDataset
    from mscl.tracking.lineage import GridLink
    from mscl.tracking.runs import use_tracking_uri

    if request.workdir.is_dir():  # relative paths of the config mean what they meant to the driver
        os.chdir(request.workdir)
    cfg = request.config
    client = MlflowClient(use_tracking_uri(cfg.tracking.uri))
    with PreparedDataset(request.data_dir) as dataset:
        digest = dataset.manifest.digest()
    if digest != request.digest:
        raise ConfigError(
            f"the dataset at {request.data_dir} on {os.uname().nodename} has digest {digest[:12]}, the "
            f"study's is {request.digest[:12]}: every node must read the same prepared dataset"
        )
    run = cell_run(client, request.experiment_id, request.study_run_id, request.cell)
    if run is not None and run.info.status == "FINISHED":
        return run.info.run_id
    if run is not None:
        resume_study(run.info.run_id, request.data_dir, tracking_uri=cfg.tracking.uri, quiet=True)
        return run.info.run_id
    train_study(request.data_dir, cfg, quiet=True, link=GridLink(request.study_run_id, request.cell.key))
    run = cell_run(client, request.experiment_id, request.study_run_id, request.cell)
    if run is None or run.info.status != "FINISHED":
        raise MsclError(f"{request.cell.key}: trained, but its finished parent run is not in the store")
    return run.info.run_id


def cell_run(client: MlflowClient, experiment_id: str, study_run_id: str, cell: Cell) -> Run | None:
    """The parent run of ``cell`` in the study ``study_run_id``, if one was created and set up.

    A run whose set-up never finished (its worker died before the configuration was logged) holds nothing
    to resume: it is deleted, and the cell starts again.
    """
    query = f"tags.`{tree.STUDY_RUN_TAG}` = '{study_run_id}' and tags.`{tree.STUDY_CELL_TAG}` = '{cell.key}'"
    found = client.search_runs([experiment_id], query, max_results=10)
    usable = []
    for run in found:
        if tree.CONFIG_SHA_TAG in run.data.tags:
            usable.append(run)
        else:
            client.delete_run(run.info.run_id)
    return max(usable, key=lambda run: run.info.start_time, default=None)


def _finished_outcome(request: CellRequest, run_id: str, started: float) -> CellOutcome:
    from mlflow.tracking import MlflowClient

    metrics = MlflowClient().get_run(run_id).data.metrics
    metric = request.config.eval.metrics[0]
    acc = metrics.get(tree.summary_key("acc", metric))
    bwt = metrics.get(tree.summary_key("bwt", metric))
    seconds = metrics.get(tree.WALL_TIME, time.perf_counter() - started)
    return CellOutcome(request.cell, run_id, seconds / 60, acc, bwt)


def _failed(cell: Cell, started: float, error: str, exit_code: int) -> CellOutcome:
    return CellOutcome(cell, None, (time.perf_counter() - started) / 60, error=error, exit_code=exit_code)
