"""Typed Python entry points behind the CLI: usable from tests, notebooks and MLflow entry points."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.console import Console
from rich.table import Table

from mscl.config import ExperimentConfig, load_config
from mscl.data.dataset import PreparedDataset
from mscl.data.predictions import PredictionWriter
from mscl.errors import StudyInterrupted, TrackingError, first_line
from mscl.interrupts import sigterm_as_interrupt as sigterm_as_interrupt  # the API's, re-exported
from mscl.permissions import owner_writes
from mscl.progress import ProgressDisplay
from mscl.protocol.loop import StudySetup, plan_study, run_study, stage_epochs
from mscl.protocol.observers import CompositeObserver, ProgressObserver, StudyObserver
from mscl.protocol.preflight import check_study
from mscl.protocol.results import StudyResult
from mscl.tracking.tree import SEED_TAG

if TYPE_CHECKING:
    import torch
    from mlflow.entities import Run
    from mlflow.tracking import MlflowClient

    from mscl.tracking.lineage import GridLink


def train_study(
    data_dir: Path,
    cfg: ExperimentConfig,
    quiet: bool = False,
    observers: Sequence[StudyObserver] = (),
    verify_data: bool = False,
    link: GridLink | None = None,
) -> list[StudyResult]:
    """Run ``cfg.strategy`` for every seed of ``cfg.protocol.seeds``, one MLflow parent run per seed.

    Before the first run is created, everything a user can get wrong is checked
    (:func:`mscl.protocol.preflight.check_study`: device, folders, every case of the study readable).

    Args:
        data_dir: a prepared dataset directory.
        cfg: the resolved configuration.
        quiet: no progress bars or tables.
        observers: extra observers of every study (notebooks, tests).
        verify_data: also check every case of the study against its sha256 before starting.
        link: the study grid cell these runs belong to (``mscl study``): nest them under its study run.

    Returns:
        One :class:`StudyResult` per seed, in seed order.

    Raises:
        StudyInterrupted: on Ctrl-C or SIGTERM, after ending the runs as KILLED.
    """
    from mscl.tracking.runs import use_tracking_uri
    from mscl.tracking.uri import connect_tracking

    timeouts = cfg.tracking.connect_timeout_s, cfg.tracking.retry_budget_s
    with owner_writes():
        uri = connect_tracking(cfg.tracking.uri, *timeouts)  # an unreachable server fails first
        with PreparedDataset(data_dir) as dataset, sigterm_as_interrupt():
            check_study(dataset, cfg, verify=verify_data)
            first, *later = cfg.protocol.seeds
            setup = plan_study(dataset, cfg, first)  # a strategy that cannot be set up fails here, before
            try:  # the store: the seeds share its settings; a new sqlite store is created only now
                use_tracking_uri(uri, *timeouts)
            except BaseException:
                setup.strategy.close()
                raise
            results = [_run_seed(dataset, cfg, first, setup, quiet, observers, link=link)]
            return results + [
                _run_seed(dataset, cfg, seed, plan_study(dataset, cfg, seed), quiet, observers, link=link)
                for seed in later
            ]


def resume_study(
    run_id: str,
    data_dir: Path,
    *,
    tracking_uri: str | None = None,
    preset: str | None = None,
    config_file: Path | None = None,
    overrides: Sequence[str | Mapping[str, Any]] = (),
    quiet: bool = False,
    observers: Sequence[StudyObserver] = (),
    verify_data: bool = False,
) -> StudyResult:
    """Continue the interrupted study of parent run ``run_id`` where it stopped.

    The run's logged configuration is used (read back only once it matches its logged sha256); settings
    given here must agree with it, and the dataset must have the logged digest, otherwise nothing is
    resumed and the differences are named. A FINISHED run is refused.
    """
    from mlflow.tracking import MlflowClient

    from mscl.tracking.checkpoints import run_config
    from mscl.tracking.resume import check_resumable, parent_run
    from mscl.tracking.runs import use_tracking_uri
    from mscl.tracking.uri import apply_http_defaults, is_http

    with owner_writes():
        client = MlflowClient(use_tracking_uri(tracking_uri, existing=True))
        parent = parent_run(client, run_id)
        logged = run_config(client, parent)
        current = resolve_against(logged, preset, config_file, overrides)
        if is_http(client.tracking_uri):
            apply_http_defaults(budget_s=current.tracking.retry_budget_s)
        seed = int(parent.data.tags[SEED_TAG])
        with PreparedDataset(data_dir) as dataset, sigterm_as_interrupt():
            check_resumable(parent, logged, current, dataset.manifest.digest())
            check_study(dataset, logged, verify=verify_data)
            setup = plan_study(dataset, logged, seed)
            return _run_seed(dataset, logged, seed, setup, quiet, observers, resume=parent)


def resolve_against(
    logged: ExperimentConfig,
    preset: str | None,
    config_file: Path | None,
    overrides: Sequence[str | Mapping[str, Any]],
) -> ExperimentConfig:
    """The configuration a resume command asks for: the logged one with the given settings applied, through
    the very resolution of every other command (:func:`mscl.config.load_config`)."""
    return load_config(preset, config_file, overrides, base=logged)


def _run_seed(
    dataset: PreparedDataset,
    cfg: ExperimentConfig,
    seed: int,
    setup: StudySetup,
    quiet: bool,
    observers: Sequence[StudyObserver],
    resume: Run | None = None,
    link: GridLink | None = None,
) -> StudyResult:
    """One (strategy, seed) study inside its MLflow parent run, resumed when ``resume`` is given."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from mscl.protocol.checkpoints import CheckpointObserver, StateStore
    from mscl.tracking.lineage import LineageObserver
    from mscl.tracking.resume import ResumeInfo, load_resume_info
    from mscl.tracking.runs import StudyRunRef, log_study_result, study_run
    from mscl.tracking.stages import MlflowStudyObserver
    from mscl.tracking.uri import configured_wait_s, is_http

    started = time.perf_counter()
    stages = setup.strategy.plan(setup.order)
    resume_id = resume.info.run_id if resume is not None else None
    ref = StudyRunRef(run_id=resume_id, ready=resume_id is not None)
    try:
        info = ResumeInfo()
        if resume is not None:  # everything read back is verified before the run is re-opened
            store = StateStore(cfg.train.checkpoint_dir / resume.info.run_id)
            info = load_resume_info(MlflowClient(), resume, stages, store)
        with (
            study_run(cfg, seed, setup, dataset, resume_id, ref, link) as (client, run_id),
            ProgressDisplay(quiet) as display,
        ):
            store = StateStore(cfg.train.checkpoint_dir / run_id)
            title = f"{cfg.strategy.name} seed {seed}"
            observer = CompositeObserver(
                [
                    MlflowStudyObserver(
                        client, run_id, cfg, seed, dataset.manifest, reattach=info.stage_runs
                    ),
                    LineageObserver(client, run_id, cfg, dataset, setup.strategy),
                    CheckpointObserver(store, cfg.train.checkpoint_every, setup.strategy),
                    ProgressObserver(display, stages, stage_epochs(cfg), title, cfg.eval.metrics[0]),
                    *observers,
                ]
            )
            result = run_study(dataset, cfg, seed, observer, setup, info.point)
            earlier = sum(outcome.seconds for outcome in info.point.finished.values())
            log_study_result(client, run_id, result, time.perf_counter() - started + earlier)
            if cfg.tracking.register_model:
                from mscl.tracking.models import register_final_model

                register_final_model(client, run_id, cfg.tracking.register_model, cfg.tracking.model_alias)
    except MlflowException as exc:
        import mlflow

        uri = mlflow.get_tracking_uri()
        what = f"the tracking server {uri}" if is_http(uri) else f"the tracking store {uri}"
        when = f"run {ref.run_id}: {what} failed mid-run" if ref.run_id else f"{what} failed before the run"
        waited = f", after retrying for about {configured_wait_s():.0f} s (tracking.retry_budget_s)"
        raise TrackingError(f"{when}{waited if is_http(uri) else ''}: {first_line(exc)}") from None
    except KeyboardInterrupt:
        if ref.run_id is None:
            raise StudyInterrupted("interrupted before the run was created: nothing to resume") from None
        if not ref.ready:
            raise StudyInterrupted(
                f"interrupted while run {ref.run_id} was being set up: it ended as KILLED with nothing "
                "trained; start the study again"
            ) from None
        raise StudyInterrupted(
            f"interrupted: run {ref.run_id} ended as KILLED; continue it with "
            f"`mscl train --resume {ref.run_id} --data {dataset.directory}`"
        ) from None
    finally:
        setup.strategy.close()  # run_study closes it too; this is for a failure before the loop (idempotent)
    Console(quiet=quiet).print(result_table(result, run_id))
    return result


def result_table(result: StudyResult, run_id: str) -> Table:
    """The R matrix of a study's headline metric with its ACC, BWT and FWT, as a rich table."""
    metric = result.metrics[0]
    title = f"{result.strategy} seed {result.seed} (run {run_id[:8]}) {result.summary_line()}"
    table = Table(title=title, pad_edge=False)  # without edge padding the paper's 8 centers fit 80 columns
    table.add_column("after stage", no_wrap=True)  # stage names whole; a narrow terminal folds the numbers
    for center in result.centers:
        table.add_column(center, justify="right", overflow="fold")
    table.add_row("untrained", *(f"{v:.3f}" for v in result.baseline_of(metric)))
    for outcome, row in zip(result.stages, result.matrix_of(metric), strict=True):
        table.add_row(outcome.stage.name, *(f"{v:.3f}" for v in row))
    return table


def evaluate_run(
    run_id: str,
    data_dir: Path,
    *,
    stage: int | None = None,
    split: str = "test",
    save_predictions: Path | None = None,
    tracking_uri: str | None = None,
    quiet: bool = False,
) -> dict[str, dict[str, dict[str, float]]]:
    """Score a logged stage checkpoint on a prepared dataset and log the result as an ``evaluate`` run.

    Args:
        run_id: a parent run (its last stage, or ``stage``) or a stage run.
        data_dir: any prepared dataset directory, e.g. a new hospital.
        stage: 1-based stage of a parent run; default the last.
        split: ``test``, ``train`` or ``all`` cases of the dataset.
        save_predictions: folder for soft-segmentation NIfTI files in the prepared space.

    Returns:
        ``{metric: {center: {case_id: score}}}`` for every metric of the run's ``eval.metrics``.
    """
    from mlflow.tracking import MlflowClient

    from mscl.engine.device import resolve_device
    from mscl.tracking.checkpoints import load_stage_model, run_config, stage_run
    from mscl.tracking.runs import use_tracking_uri

    with owner_writes():
        client = MlflowClient(use_tracking_uri(tracking_uri, existing=True))
        run = stage_run(client, run_id, stage)
        cfg = run_config(client, run)
        device = resolve_device(cfg.train.device)
        model = load_stage_model(client, run, cfg).to(device)
        return _evaluate(client, run, cfg, model, device, data_dir, split, save_predictions, quiet)


def _evaluate(
    client: MlflowClient,
    run: Run,
    cfg: ExperimentConfig,
    model: torch.nn.Module,
    device: torch.device,
    data_dir: Path,
    split: str,
    save_predictions: Path | None,
    quiet: bool,
) -> dict[str, dict[str, dict[str, float]]]:
    """Score ``model`` (the verified checkpoint of ``run``) on ``data_dir`` and log the evaluate run."""
    from mscl.engine.evaluation import evaluate_centers
    from mscl.tracking.runs import log_evaluation

    with PreparedDataset(data_dir) as dataset:
        writer = PredictionWriter(save_predictions, dataset) if save_predictions else None
        records = dataset.manifest.cases_of(split=None if split == "all" else split)  # type: ignore[arg-type]
        centers = {
            center: [(r.id, *dataset.load(r.id), r.spacing) for r in records if r.center == center]
            for center in dataset.manifest.center_names()
        }
        evaluation = evaluate_centers(
            model,
            {center: cases for center, cases in centers.items() if cases},
            cfg.eval,
            cfg.train.patch_size,
            device,
            cfg.train.precision,
            on_prediction=writer.write if writer else None,
        )
        log_evaluation(client, run, dataset, evaluation, split)
    Console(quiet=quiet).print(evaluation_table(evaluation.per_case, run.info.run_name or run.info.run_id))
    return evaluation.per_case


def evaluation_table(scores: dict[str, dict[str, dict[str, float]]], source: str) -> Table:
    """Per-center mean (and std) of every metric of an evaluation, as a rich table."""
    table = Table(title=f"Evaluation of {source}")
    table.add_column("center", no_wrap=True)  # center names whole; a narrow terminal folds the metrics
    table.add_column("cases", justify="right")
    for metric in scores:
        table.add_column(metric, justify="right", overflow="fold")
    for center in next(iter(scores.values()), {}):
        cells = []
        for metric in scores:
            values = np.array(list(scores[metric][center].values()), dtype=float)
            defined = values[~np.isnan(values)]
            cells.append(f"{defined.mean():.3f} ± {defined.std():.3f}" if defined.size else "-")
        table.add_row(center, str(len(scores[next(iter(scores))][center])), *cells)
    return table
