"""``mscl study``: run a grid of (strategy, seed, order) studies on Ray under one study run.

Before anything is created: the grid's configurations resolve, every cell shares one tracking store and
experiment, a cluster gets a tracking server every node can reach (never ``sqlite:///`` or a local folder),
Ray is importable, and each distinct (strategy, order) passes the preflight of ``mscl train``. Then the
study run is created and every cell becomes a Ray task (:mod:`mscl.study.scheduler`), each exactly what
``mscl train`` runs for it. Ctrl-C (or SIGTERM) cancels the grid: running studies end as KILLED, the study
run too, and ``mscl study --resume STUDY_RUN_ID`` finishes it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from rich.console import Console

from mscl.config import ExperimentConfig
from mscl.errors import ConfigError, MsclError, StudyInterrupted
from mscl.study.cell import CellOutcome, CellRequest
from mscl.study.grid import Cell, StudySettings
from mscl.study.tracking import Grid
from mscl.words import counted

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from mscl.study.scheduler import Resources


class CellsFailed(MsclError):
    """One or more cells of a grid failed; the message names each with its error."""

    def __init__(self, failed: list[CellOutcome]) -> None:
        super().__init__("; ".join(f"{o.cell.key} failed: {o.error}" for o in failed))
        self.failed = failed
        self.exit_code = 1 if any(o.exit_code == 1 for o in failed) else failed[0].exit_code


def new_grid(data_dir: Path, settings: StudySettings, configs: dict[Cell, ExperimentConfig]) -> Grid:
    """The grid of a new study over ``data_dir`` (absolute), with the dataset's digest."""
    from mscl.data.dataset import PreparedDataset

    with PreparedDataset(data_dir) as dataset:
        digest = dataset.manifest.digest()
    return Grid(settings, Path(data_dir).resolve(), digest, configs)


def run_grid(
    grid: Grid,
    *,
    quiet: bool = False,
    verify_data: bool = False,
    resume_run_id: str | None = None,
    settings: StudySettings | None = None,
) -> Grid:
    """Run (or, with ``resume_run_id``, finish) ``grid``; see the module docstring.

    Args:
        settings: how to execute a resumed grid (workers, resources, address), when not as it was started.

    Returns:
        The grid as it ran: its tracking URI resolved, every cell's outcome in ``grid.outcomes``.

    Raises:
        ConfigError: a grid that cannot run (mixed tracking stores, sqlite with a cluster, no Ray).
        CellsFailed: after every cell has ended, when any failed.
        StudyInterrupted: Ctrl-C or SIGTERM, once every cell has stopped and its runs are KILLED.
    """
    from mlflow.tracking import MlflowClient

    from mscl.interrupts import sigterm_as_interrupt
    from mscl.permissions import owner_writes
    from mscl.study.scheduler import import_ray, ray_instance
    from mscl.study.tracking import create_study_run
    from mscl.tracking.runs import ensure_experiment, use_tracking_uri
    from mscl.tracking.uri import connect_tracking

    settings = settings or grid.settings
    tracking = grid.tracking()
    if settings.address is not None:
        _check_shared_store(tracking.uri)
    import_ray()
    with owner_writes():
        uri = connect_tracking(tracking.uri, tracking.connect_timeout_s, tracking.retry_budget_s)
        grid = grid.with_tracking_uri(uri)
        _preflight(grid, verify_data)  # before anything is created: the store included
        use_tracking_uri(uri, tracking.connect_timeout_s, tracking.retry_budget_s)
        headline = next(iter(grid.configs.values())).eval.metrics[0]  # the UI's columns, as `train` sets
        experiment_id = ensure_experiment(tracking.experiment, headline)
        client = MlflowClient(uri)
        study_run_id = resume_run_id or create_study_run(client, experiment_id, grid)
        requests = _requests(grid, experiment_id, study_run_id)
        console = Console(quiet=quiet, stderr=True)
        try:
            with sigterm_as_interrupt(), ray_instance(settings) as (ray, resources):
                shares = f"{resources.cpus_per_study} CPU(s), {resources.gpus_per_study:g} GPU(s) each"
                where = f"{resources.workers} at once" if resources.workers else f"cluster {settings.address}"
                studies = counted(len(requests), "study", "studies")
                console.print(f"study {study_run_id[:8]}: {studies}, {where}, {shares}")
                outcomes = _execute(
                    ray, resources, requests, settings.max_retries, client, study_run_id, quiet
                )
        except KeyboardInterrupt:
            raise _interrupted(client, experiment_id, study_run_id, grid.data_dir) from None
        except BaseException:
            client.set_terminated(study_run_id, "FAILED")
            raise
    failed = [outcome for outcome in outcomes if not outcome.ok]
    client.set_terminated(study_run_id, "FAILED" if failed else "FINISHED")
    if failed:
        raise CellsFailed(failed)
    return replace(grid, outcomes=outcomes)


def _check_shared_store(uri: str | None) -> None:
    """A cluster's tasks run on other machines: they must all reach the tracking store, so it must be a
    server."""
    from mscl.tracking.uri import is_http

    if uri is None or not is_http(uri):
        raise ConfigError(
            f"--address: the tracking URI {uri or 'sqlite:///mlflow.db (the default)'} is a store on this "
            "machine that the cluster's nodes cannot reach; start an MLflow server and pass "
            "--tracking-uri http://HOST:PORT"
        )


def _preflight(grid: Grid, verify_data: bool) -> None:
    """The checks of ``mscl train`` for each distinct (strategy, order) of the grid, before any run exists."""
    from mscl.data.dataset import PreparedDataset
    from mscl.protocol.preflight import check_study

    checked: set[tuple[str, str]] = set()
    with PreparedDataset(grid.data_dir) as dataset:
        for cell, cfg in grid.configs.items():
            if (cell.strategy, cell.order) not in checked:
                try:
                    check_study(dataset, cfg, verify=verify_data and not checked)
                except MsclError as exc:
                    raise type(exc)(f"{cell.key}: {exc}") from None
                checked.add((cell.strategy, cell.order))


def _requests(grid: Grid, experiment_id: str, study_run_id: str) -> list[CellRequest]:
    """One request per cell."""
    return [
        CellRequest(
            cell=cell,
            config=cfg,
            data_dir=grid.data_dir,
            digest=grid.digest,
            study_run_id=study_run_id,
            experiment_id=experiment_id,
            workdir=Path.cwd(),
        )
        for cell, cfg in grid.configs.items()
    ]


def _execute(
    ray: ModuleType,
    resources: Resources,
    requests: list[CellRequest],
    max_retries: int,
    client: MlflowClient,
    study_run_id: str,
    quiet: bool,
) -> list[CellOutcome]:
    """Run the requests as tasks with an overall bar and one line per ended study; outcomes in grid order."""
    from mscl.progress import ProgressDisplay
    from mscl.study.scheduler import run_tasks
    from mscl.study.tracking import record_progress

    requests = [_with_threads(request, resources.cpus_per_study) for request in requests]
    finished = 0
    with ProgressDisplay(quiet) as bar:
        task = bar.add_task(f"study {study_run_id[:8]}", total=len(requests), unit="cell")

        def ended(outcome: CellOutcome) -> None:
            nonlocal finished
            bar.print(outcome.line())
            bar.advance(task)
            if outcome.ok:
                finished += 1
                record_progress(client, study_run_id, finished)

        outcomes = run_tasks(ray, resources, requests, max_retries, ended)
    by_cell = {outcome.cell: outcome for outcome in outcomes}
    return [by_cell[request.cell] for request in requests]


def _with_threads(request: CellRequest, cpus: int) -> CellRequest:
    """A cell trains with its CPUs as torch threads unless its config sets ``train.threads``; either way
    the count is in its config, so its parent run records it (CPU results depend on it)."""
    train = request.config.train
    if train.threads is not None:
        return request
    config = request.config.model_copy(update={"train": train.model_copy(update={"threads": cpus})})
    return replace(request, config=config)


def _interrupted(
    client: MlflowClient, experiment_id: str, study_run_id: str, data_dir: Path
) -> StudyInterrupted:
    """End the grid's open runs and the study run as KILLED; the error that says how to finish it."""
    from mscl.interrupts import deferred_interrupts
    from mscl.study.tracking import end_cell_runs

    with deferred_interrupts():  # a second Ctrl-C must not cut the stopping short
        end_cell_runs(client, experiment_id, study_run_id, "KILLED")
        client.set_terminated(study_run_id, "KILLED")
    return StudyInterrupted(
        f"interrupted: every running study ended as KILLED; finish the grid with "
        f"`mscl study --resume {study_run_id} --data {data_dir}`"
    )


def train_parallel(
    data_dir: Path, cfg: ExperimentConfig, workers: int, quiet: bool = False, verify_data: bool = False
) -> Grid:
    """``mscl train --seeds N --parallel W``: the grid of ``cfg``'s one strategy and order over its seeds,
    ``workers`` at once: the same Ray path, study run and resume as ``mscl study``."""
    from mscl.study.grid import StudySettings

    if workers < 1:
        raise ConfigError(f"--parallel must be >= 1, got {workers}")
    seeds = cfg.protocol.seeds
    settings = StudySettings(
        strategies=[cfg.strategy.name], seeds=seeds, orders=[cfg.protocol.order], workers=workers
    )
    configs = {
        Cell(cfg.strategy.name, seed, cfg.protocol.order): cfg.model_copy(
            update={"protocol": cfg.protocol.model_copy(update={"seeds": [seed]})}
        )
        for seed in seeds
    }
    return run_grid(new_grid(data_dir, settings, configs), quiet=quiet, verify_data=verify_data)
