"""Writing a study to MLflow (stage contract 2): a parent run per (strategy, seed), its nested stage runs
written by :class:`mscl.tracking.stages.MlflowStudyObserver`.

Runs are created through MLflow's fluent API, so MLflow sets its own source and git tags; everything else is
logged in batches through :class:`mlflow.tracking.MlflowClient` against explicit run ids.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import mlflow
from mlflow.entities import Metric, Param, Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from mscl.config import DEFAULT_METRICS, ExperimentConfig
from mscl.data.dataset import PreparedDataset
from mscl.engine.evaluation import Evaluation
from mscl.interrupts import deferred_interrupts
from mscl.protocol.kinds import SEQUENTIAL_KINDS
from mscl.protocol.loop import StudySetup
from mscl.protocol.metrics import summarize
from mscl.protocol.results import StudyResult
from mscl.tracking import tree
from mscl.tracking.artifacts import log_bytes, log_json
from mscl.tracking.lineage import GridLink, log_lineage, start_run_options
from mscl.tracking.rmatrix import MetricMatrix, RMatrix, log_r_matrix
from mscl.tracking.ui import experiment_tags
from mscl.tracking.uri import (
    DEFAULT_CONNECT_TIMEOUT_S,
    DEFAULT_RETRY_BUDGET_S,
    connect_existing,
    connect_tracking,
    create_sqlite_store,
    no_http_retries,
    sqlite_path,
)

MAX_BATCH = 900  # MLflow accepts at most 1000 metrics per log_batch call


def _now_ms() -> int:
    return int(time.time() * 1000)


def log_metrics(client: MlflowClient, run_id: str, values: dict[str, float], step: int = 0) -> None:
    """Log many metrics in as few ``log_batch`` calls as possible."""
    stamp = _now_ms()
    batch = [Metric(key, float(value), stamp, step) for key, value in values.items()]
    for start in range(0, len(batch), MAX_BATCH):
        client.log_batch(run_id, metrics=batch[start : start + MAX_BATCH])


def ensure_experiment(name: str, metric: str = DEFAULT_METRICS[0]) -> str:
    """Make ``name`` the active experiment, creating it if needed; returns its id.

    With a ``sqlite:///`` store, a new experiment keeps its artifacts in ``mlartifacts/`` beside the
    database file (MLflow would otherwise write ``./mlruns`` into whatever folder the command runs in). A
    new experiment is tagged for the MLflow UI: its runs table opens with the study tags and the continual
    metrics of ``metric`` as columns (:func:`mscl.tracking.ui.experiment_tags`).
    """
    client = MlflowClient()
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        database = sqlite_path(mlflow.get_tracking_uri())
        location = (database.resolve().parent / "mlartifacts").as_uri() if database else None
        experiment_id = client.create_experiment(name, location, tags=experiment_tags(metric))
    else:
        experiment_id = experiment.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


@dataclass
class StudyRunRef:
    """The parent run of a study as :func:`study_run` gets to know it: its id once the run exists (also
    when what follows fails), and whether its tags, params, config and dataset were all logged."""

    run_id: str | None = None
    ready: bool = False


@contextmanager
def study_run(
    cfg: ExperimentConfig,
    seed: int,
    setup: StudySetup,
    dataset: PreparedDataset,
    resume_run_id: str | None = None,
    ref: StudyRunRef | None = None,
    link: GridLink | None = None,
) -> Iterator[tuple[MlflowClient, str]]:
    """Open the parent run ``<strategy>-seed<seed>`` with tags, params, config and dataset manifest.

    The run is created with its tags in one call, Ctrl-C and SIGTERM held until its id is known (``ref``),
    so no signal leaves an untagged run or an unnamed one. With ``resume_run_id`` the existing parent run is
    re-opened instead (nothing is logged again). An interruption (Ctrl-C, SIGTERM) ends every open run as
    KILLED, any other error as FAILED; when the tracking store itself failed, ending the runs is tried once,
    without retries (the store has just used up its retry budget).
    """
    ref = ref if ref is not None else StudyRunRef()
    ensure_experiment(cfg.tracking.experiment, cfg.eval.metrics[0])
    options = start_run_options(cfg, resume=resume_run_id is not None, link=link)
    with deferred_interrupts() as received:
        if resume_run_id is not None:
            run = mlflow.start_run(run_id=resume_run_id, **options)
        else:
            tags = {**options.pop("tags", {}), **_study_tags(cfg, seed, setup, dataset)}
            run = mlflow.start_run(
                run_name=tree.parent_run_name(cfg.strategy.name, seed), tags=tags, **options
            )
        ref.run_id = run.info.run_id
    client, run_id = MlflowClient(), run.info.run_id
    try:
        if received:
            raise KeyboardInterrupt
        if resume_run_id is None:
            _log_study_start(client, run_id, cfg, seed, dataset)
        ref.ready = True
        yield client, run_id
    except KeyboardInterrupt:
        _end_open_runs("KILLED")
        raise
    except MlflowException:
        _end_open_runs("FAILED", retry=False)
        raise
    except BaseException:
        _end_open_runs("FAILED")
        raise
    _end_open_runs("FINISHED")


def _end_open_runs(status: str, retry: bool = True) -> None:
    """End every active run (stage runs first, then the parent) with ``status``.

    Without ``retry`` each run is ended with one attempt and a failure is ignored: the tracking store has
    failed, and the error that says so is already on its way.
    """
    if retry:
        while mlflow.active_run() is not None:
            mlflow.end_run(status)
        return
    with no_http_retries():
        while mlflow.active_run() is not None:
            try:
                mlflow.end_run(status)  # pops the run before asking the store, so the loop always ends
            except Exception:  # the store is down: the runs stay RUNNING there
                continue


def _study_tags(
    cfg: ExperimentConfig, seed: int, setup: StudySetup, dataset: PreparedDataset
) -> dict[str, str]:
    """The tags a parent run is created with."""
    return {
        tree.STRATEGY_TAG: cfg.strategy.name,
        tree.KIND_TAG: setup.strategy.kind,
        tree.SEED_TAG: str(seed),
        tree.ORDER_TAG: ",".join(setup.order),
        tree.ORDER_KIND_TAG: setup.order_kind,
        tree.DATASET_DIGEST_TAG: dataset.manifest.digest(),
        tree.DATASET_TAG: str(dataset.directory.resolve()),
        tree.FINISHED_STAGES_TAG: "0",
        tree.HASHED_TAG: tree.HASHED_VERSION,
    }


def _log_study_start(
    client: MlflowClient,
    run_id: str,
    cfg: ExperimentConfig,
    seed: int,
    dataset: PreparedDataset,
) -> None:
    params = {**cfg.flat(), tree.SEED_PARAM: str(seed)}
    client.log_batch(run_id, params=[Param(k, v[: tree.MAX_PARAM_CHARS]) for k, v in params.items()])
    log_bytes(client, run_id, cfg.to_yaml().encode("utf-8"), tree.CONFIG_ARTIFACT)
    log_json(client, run_id, json.loads(dataset.manifest.model_dump_json()), tree.DATASET_ARTIFACT)
    log_lineage(client, run_id, cfg, seed, dataset)


def to_rmatrix(result: StudyResult) -> RMatrix:
    """The study's R matrices, one per metric, with each metric's direction and bounds."""
    from mscl.metrics.registry import METRICS

    metrics = {}
    for name in result.metrics:
        metric = METRICS.get(name)
        metrics[name] = MetricMatrix(
            higher_is_better=metric.higher_is_better,
            bounds=metric.bounds,
            matrix=result.matrix_of(name).tolist(),
            baseline=result.baseline_of(name),
            per_case={s.stage.index: s.per_case[name] for s in result.stages},
        )
    return RMatrix(
        strategy=result.strategy,
        kind=result.kind,
        seed=result.seed,
        order=[s.stage.center for s in result.stages],
        centers=result.centers,
        metrics=metrics,
    )


def log_study_result(client: MlflowClient, run_id: str, result: StudyResult, wall_s: float) -> RMatrix:
    """Log ``r_matrix.json`` and the continual metrics of every metric on the parent run."""
    rmatrix = to_rmatrix(result)
    log_r_matrix(client, run_id, rmatrix)
    costs = {tree.WALL_TIME: wall_s, tree.SECONDS_PER_STAGE: wall_s / max(len(result.stages), 1)}
    log_metrics(client, run_id, {**study_metrics(rmatrix), **costs})
    return rmatrix


def study_metrics(rmatrix: RMatrix) -> dict[str, float]:
    """The parent run's metrics: ``acc/<metric>``, the BWT family for stage sequences over the centers
    (``bwt/<metric>``, ``bwt/<metric>/<center>``, ...) and ``zero_shot/<metric>/stage<i>``."""
    values: dict[str, float] = {}
    sequential = rmatrix.kind in SEQUENTIAL_KINDS
    for name, metric in rmatrix.metrics.items():
        summary = summarize(
            metric.r, rmatrix.order, rmatrix.centers, metric.baseline_row, sequential, metric.higher_is_better
        )
        for key, value in summary.summaries().items():
            if key == "acc" or (sequential and len(rmatrix.order) > 1):
                values[tree.summary_key(key, name)] = value
        values |= {tree.summary_key("bwt", name, c): v for c, v in summary.per_center_bwt.items()}
        values |= {tree.zero_shot_key(name, i + 1): v for i, v in enumerate(summary.zero_shot)}
    return {k: float(v) for k, v in values.items()}


def use_tracking_uri(
    uri: str | None,
    timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
    retry_budget_s: float = DEFAULT_RETRY_BUDGET_S,
    existing: bool = False,
) -> str:
    """Point MLflow's fluent API at the tracking store, failing fast when a server does not answer, and
    create a new ``sqlite:///`` store one process at a time; with ``existing`` (a command about runs already
    logged: resume, evaluate, extend) a missing ``sqlite:///`` database is an error and nothing is created.

    See :func:`mscl.tracking.uri.connect_tracking`, :func:`mscl.tracking.uri.connect_existing` and
    :func:`mscl.tracking.uri.create_sqlite_store`.
    """
    if existing:
        resolved = connect_existing(uri, timeout_s, retry_budget_s)
    else:
        resolved = connect_tracking(uri, timeout_s, retry_budget_s)
        create_sqlite_store(resolved)
    mlflow.set_tracking_uri(resolved)
    return resolved


def log_evaluation(
    client: MlflowClient,
    source: Run,
    dataset: PreparedDataset,
    evaluation: Evaluation,
    split: str,
) -> str:
    """Log an evaluation of ``source``'s checkpoint as a run ``evaluate-<source name>``; returns its id."""
    name = tree.evaluate_run_name(source.info.run_name or source.info.run_id[:8])
    run = client.create_run(
        source.info.experiment_id,
        run_name=name,
        tags={
            tree.KIND_TAG: tree.EVALUATE_KIND,
            tree.SOURCE_RUN_TAG: source.info.run_id,
            tree.SPLIT_TAG: split,
            tree.DATASET_TAG: str(dataset.directory.resolve()),
            tree.DATASET_DIGEST_TAG: dataset.manifest.digest(),
            tree.HASHED_TAG: tree.HASHED_VERSION,
        },
    )
    run_id = run.info.run_id
    means = {
        tree.test_key(metric, center): score
        for metric, centers in evaluation.means().items()
        for center, score in centers.items()
    }
    log_metrics(client, run_id, means)
    log_json(client, run_id, evaluation.per_case, tree.PER_CASE_ARTIFACT)
    client.set_terminated(run_id)
    return run_id
