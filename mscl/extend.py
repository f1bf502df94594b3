"""``mscl extend``: a finished study goes on with new hospitals, trained from what the group still has.

What the group still has: the study in MLflow (config, R matrices, the last stage's verified checkpoint
with the strategy's state) and, for replay, the memory store as it was written; not the earlier hospitals'
datasets. The new centers come as a prepared dataset directory with the study's preprocessing. Everything
is checked before a run is created; the parent run changes only once every new stage has finished
(:func:`mscl.tracking.extension.log_extension`), so an interrupted or failed extension leaves it as it was.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.console import Console
from rich.table import Table

from mscl.config import ExperimentConfig, load_config
from mscl.data.dataset import PreparedDataset
from mscl.errors import ConfigError, DataError, StudyInterrupted, TrackingError, first_line
from mscl.interrupts import deferred_interrupts, sigterm_as_interrupt
from mscl.permissions import owner_writes
from mscl.progress import ProgressDisplay
from mscl.protocol.extend import extension_numbers, run_extension
from mscl.protocol.loop import StageCheckpoint, TestCases, test_cases
from mscl.protocol.observers import CompositeObserver, ProgressObserver, StudyObserver
from mscl.protocol.preflight import check_study
from mscl.strategies.base import ExtraCase, StagePlan, Strategy

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from mscl.tracking.extension import FinishedStudy
    from mscl.tracking.rmatrix import RMatrix

FIXED = ("model.", "strategy.name", "memory.", "eval.", "protocol.")
"""Settings an extension keeps as the study had them: the network, the strategy, the memory (its path
aside: :data:`MOVABLE`), the scores and the protocol (the new centers are ``--centers``)."""
MOVABLE = ("memory.path",)


def extend_study(
    run_id: str,
    data_dir: Path,
    *,
    centers: Sequence[str] | None = None,
    overrides: Sequence[str | Mapping[str, Any]] = (),
    eval_data: Path | None = None,
    tracking_uri: str | None = None,
    quiet: bool = False,
    observers: Sequence[StudyObserver] = (),
) -> RMatrix:
    """Add the centers of ``data_dir`` (or ``centers`` of them) to the finished study ``run_id``.

    Args:
        run_id: the parent run of a finished study of a sequential strategy.
        data_dir: the new centers' prepared dataset, preprocessed like the study's.
        centers: the new centers, in training order (default: every center of ``data_dir``).
        overrides: settings changed from the study's logged config (recorded on the new stage runs).
        eval_data: a dataset holding the earlier centers' test splits (default: the study's, when its
            logged folder still holds it); an earlier center found nowhere is scored NaN.
        tracking_uri: the tracking store.
        quiet: no progress bars or tables.
        observers: extra observers of the new stages (tests).

    Returns:
        The grown R matrices.

    Raises:
        ConfigError, DataError, TrackingError, MemoryBackendError: one line naming what is wrong, before
            anything is written.
        StudyInterrupted: on Ctrl-C or SIGTERM, the new stage runs ended as KILLED, the parent untouched.
    """
    from mlflow.tracking import MlflowClient

    from mscl.tracking.extension import read_finished_study
    from mscl.tracking.runs import use_tracking_uri

    with owner_writes():
        client = MlflowClient(use_tracking_uri(tracking_uri, existing=True))
        study = read_finished_study(client, run_id)
        cfg, changes = extension_config(study, overrides)
        with PreparedDataset(data_dir) as data, sigterm_as_interrupt(), ExitStack() as stack:
            new = new_centers(study, data, centers)
            check_study(data, load_config(overrides=[{"protocol": {"centers": new}}], base=cfg))
            tests = {**earlier_tests(study, data, eval_data, stack), **test_cases(data, new)}
            strategy = _build(cfg, study.seed)
            try:
                stages = new_stages(strategy, study, new)
                start = adopt(strategy, study)
            except BaseException:
                strategy.close()
                raise
            grown = _run(client, study, cfg, changes, data, tests, strategy, start, stages, observers, quiet)
    Console(quiet=quiet).print(extension_table(grown, len(study.rmatrix.order), run_id))
    return grown


def extension_config(
    study: FinishedStudy, overrides: Sequence[str | Mapping[str, Any]]
) -> tuple[ExperimentConfig, list[str]]:
    """The study's logged config with ``overrides`` applied, and the changes as ``key (old -> new)``.

    The study's ``tracking.register_model`` is not inherited: an extension registers its model only when
    asked (``--register``).

    Raises:
        ConfigError: a change of a :data:`FIXED` setting.
    """
    from mscl.tracking.resume import config_changes

    base = load_config(overrides=[{"tracking": {"register_model": None}}], base=study.cfg)
    cfg = load_config(overrides=overrides, base=base)
    changes = config_changes(study.cfg, cfg)
    refused = [c for c in changes if c.startswith(FIXED) and not c.startswith(MOVABLE)]
    if refused:
        raise ConfigError(
            f"cannot extend run {study.run_id}: {'; '.join(refused)}: an extension keeps the study's "
            "network, strategy, memory policy, metrics and protocol"
        )
    return cfg, changes


def new_centers(study: FinishedStudy, data: PreparedDataset, wanted: Sequence[str] | None) -> list[str]:
    """The centers to add: ``wanted`` (default all) of ``data``, none already in the study, ``data``
    preprocessed with the study's settings.

    Raises:
        ConfigError: a differing preprocessing setting, an unknown center or one already in the study.
    """
    ours = study.datasets[study.rmatrix.order[0]].preprocessing
    theirs = data.manifest.preprocessing
    differ = [
        f"{key} ({value} in the study, {getattr(theirs, key)} in {data.directory})"
        for key, value in ours
        if getattr(theirs, key) != value
    ]
    if differ:
        raise ConfigError(f"cannot extend run {study.run_id}: preprocessing differs: {'; '.join(differ)}")
    available = data.manifest.center_names()
    chosen = list(wanted) if wanted else available
    unknown = [c for c in chosen if c not in available]
    if unknown:
        raise ConfigError(
            f"--centers: {', '.join(unknown)} not in {data.directory}; it has {', '.join(available)}"
        )
    if len(set(chosen)) != len(chosen):
        raise ConfigError(f"--centers names a center twice: {','.join(chosen)}")
    present = [c for c in chosen if c in study.rmatrix.centers]
    if present:
        raise ConfigError(f"cannot extend run {study.run_id}: {', '.join(present)} already in the study")
    return chosen


def earlier_tests(
    study: FinishedStudy, data: PreparedDataset, eval_data: Path | None, stack: ExitStack
) -> dict[str, list[ExtraCase]]:
    """The earlier centers' test cases: from ``eval_data``, else the study's logged dataset folder, else
    ``data``; only a center whose test cases are exactly those the study scored (ids and checksums) is
    scored, any other gets none (NaN).

    Raises:
        ConfigError: ``eval_data`` holds an earlier center with other test cases.
    """
    from mscl.tracking.tree import DATASET_TAG

    sources: list[tuple[PreparedDataset, bool]] = []
    if eval_data is not None:
        sources.append((stack.enter_context(PreparedDataset(eval_data)), True))
    else:
        logged = study.parent.data.tags.get(DATASET_TAG)
        try:
            if logged and Path(logged).is_dir():
                sources.append((stack.enter_context(PreparedDataset(Path(logged))), False))
        except DataError:  # the folder no longer holds the dataset: its centers are not available
            pass
    sources.append((data, False))
    tests: dict[str, list[ExtraCase]] = {}
    for center in study.rmatrix.centers:
        tests[center] = []
        if center not in study.datasets:
            continue
        scored = {(r.id, r.image_sha256, r.label_sha256) for r in study.records(center, "test")}
        for source, explicit in sources:
            found = {(r.id, r.image_sha256, r.label_sha256) for r in source.manifest.cases_of(center, "test")}
            if found == scored:
                tests[center] = test_cases(source, [center])[center]
                break
            if explicit and found:
                raise ConfigError(
                    f"--eval-data {source.directory}: the test cases of {center} are not those the study "
                    "was scored on"
                )
    return tests


def _build(cfg: ExperimentConfig, seed: int) -> Strategy:
    from mscl.strategies import build_strategy

    try:
        return build_strategy(cfg, seed)
    except OSError as exc:  # a memory folder that cannot be opened
        raise ConfigError(f"strategy {cfg.strategy.name}: cannot set up ({exc.strerror or exc})") from None


def new_stages(strategy: Strategy, study: FinishedStudy, new: list[str]) -> list[StagePlan]:
    """The strategy's stages for the new centers, after the study's own.

    Raises:
        ConfigError: the strategy would train a new stage on an earlier center's data (``cumulative``),
            or plans the study's stages differently than it ran them.
    """
    order = study.rmatrix.order
    plan = strategy.plan([*order, *new])
    if [s.name for s in plan[: len(order)]] != [r.info.run_name for r in study.stages]:
        raise ConfigError(f"cannot extend run {study.run_id}: strategy plans other stages than the study ran")
    stages = plan[len(order) :]
    for stage in stages:
        earlier = [c for c in stage.train_centers if c not in new]
        if earlier or stage.fresh:
            what = f"the earlier centers' data ({', '.join(earlier)})" if earlier else "fresh weights"
            raise ConfigError(
                f"cannot extend run {study.run_id}: strategy {strategy.name} trains {stage.name} on {what}, "
                "which an extension does not have"
            )
    return stages


def adopt(strategy: Strategy, study: FinishedStudy) -> StageCheckpoint:
    """Load the last stage's checkpoint into ``strategy`` and let it take over its earlier stages."""
    start = study.checkpoint()
    try:
        strategy.load_state_dict(start.strategy_state)
    except ValueError as exc:  # the state of other terms than the extension's config switches on
        raise ConfigError(f"cannot extend run {study.run_id}: {exc}") from None
    done = strategy.plan(study.rmatrix.order)
    records = [r for stage in done for r in study.records(stage.center, "train")]
    strategy.adopt_stages(done, records, study.memory_manifest())
    return start


class _CreatedRuns(StudyObserver):
    """The ids of the stage runs an extension created (the active run once a stage started)."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    def stage_started(self, stage: StagePlan) -> None:
        import mlflow

        active = mlflow.active_run()
        if active is not None:
            self.ids.append(active.info.run_id)


def _run(
    client: MlflowClient,
    study: FinishedStudy,
    cfg: ExperimentConfig,
    changes: list[str],
    data: PreparedDataset,
    tests: TestCases,
    strategy: Strategy,
    start: StageCheckpoint,
    stages: list[StagePlan],
    observers: Sequence[StudyObserver],
    quiet: bool,
) -> RMatrix:
    """Train the new stages as nested runs of the study's parent, then grow the parent."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from mscl.protocol.loop import stage_epochs
    from mscl.tracking import tree
    from mscl.tracking.extension import ExtensionRecord, grow_rmatrix, log_extension
    from mscl.tracking.stages import MlflowStudyObserver

    mlflow.set_experiment(experiment_id=study.parent.info.experiment_id)
    number, digest = study.extensions + 1, data.manifest.digest()
    stage_tags = {
        tree.EXTENSION_TAG: str(number),
        tree.DATASET_TAG: str(data.directory.resolve()),
        tree.DATASET_DIGEST_TAG: digest,
        tree.CONFIG_CHANGES_TAG: "; ".join(changes) or "none",
    }
    created = _CreatedRuns()
    new = [c for stage in stages for c in stage.train_centers]
    title = f"extend {study.run_id[:8]}"
    try:
        with ProgressDisplay(quiet) as display:
            observer = CompositeObserver(
                [
                    MlflowStudyObserver(
                        client,
                        study.run_id,
                        cfg,
                        study.seed,
                        data.manifest,
                        stage_tags=stage_tags,
                        count_stages=False,
                        earlier=study.datasets,
                    ),
                    created,
                    ProgressObserver(display, stages, stage_epochs(cfg), title, cfg.eval.metrics[0]),
                    *observers,
                ]
            )
            result = run_extension(data, tests, cfg, study.seed, strategy, start, stages, observer)
        grown = grow_rmatrix(study.rmatrix, result, new)
        record = ExtensionRecord(number, data.directory, digest, new, created.ids)
        with deferred_interrupts():  # the extension is complete: its record is written whole
            log_extension(client, study, result, grown, record, data.manifest)
    except KeyboardInterrupt:
        _end(client, created.ids, "KILLED")
        raise StudyInterrupted(
            f"interrupted: the extension's stage runs ended as KILLED; run {study.run_id} is as it was"
        ) from None
    except MlflowException as exc:
        _end(client, created.ids, "FAILED")
        raise TrackingError(f"run {study.run_id}: the tracking store failed: {first_line(exc)}") from None
    except BaseException:
        _end(client, created.ids, "FAILED")
        raise
    if cfg.tracking.register_model:  # the study has grown: its last stage is the extension's
        _register(client, study.run_id, cfg.tracking.register_model, cfg.tracking.model_alias, quiet)
    return grown


def _register(client: MlflowClient, run_id: str, name: str, alias: str, quiet: bool) -> None:
    from mlflow.exceptions import MlflowException

    from mscl.tracking.models import register_final_model

    try:
        uri = register_final_model(client, run_id, name, alias)
    except MlflowException as exc:
        raise TrackingError(
            f"run {run_id} was extended, but registering {name} failed: {first_line(exc)}"
        ) from None
    Console(quiet=quiet).print(f"registered the last stage's model as {uri}")


def _end(client: MlflowClient, run_ids: list[str], status: str) -> None:
    """End the open stage run and mark every stage run of the extension ``status`` (finished ones too:
    they are no stages of the study)."""
    import mlflow

    while mlflow.active_run() is not None:
        mlflow.end_run(status)
    for run_id in run_ids:
        client.set_terminated(run_id, status)


def extension_table(grown: RMatrix, before: int, run_id: str) -> Table:
    """The headline metric after the extension: the new centers before and after, the earlier centers'
    change (the extension's own BWT)."""
    metric = grown.metric()
    numbers = extension_numbers(metric.r, grown.order, grown.centers, before, metric.higher_is_better)
    table = Table(title=f"{grown.strategy} seed {grown.seed} (run {run_id[:8]}) extended: {grown.headline}")
    table.add_column("center")
    table.add_column(f"after stage {before}", justify="right")
    table.add_column(f"after stage {len(grown.order)}", justify="right")
    for j, center in enumerate(grown.centers):
        old, now = metric.r[before - 1, j], metric.r[-1, j]
        table.add_row(center, _cell(old), _cell(now))
    table.caption = f"extension BWT {_cell(numbers.bwt, signed=True)} over the earlier centers"
    return table


def _cell(value: float, signed: bool = False) -> str:
    if np.isnan(value):
        return "missing"
    return f"{value:+.3f}" if signed else f"{value:.3f}"
