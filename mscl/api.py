"""Typed Python entry points behind the CLI: usable from tests, notebooks and MLflow entry points."""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from mscl.config import ExperimentConfig
from mscl.data.dataset import PreparedDataset
from mscl.protocol.loop import StudyResult, plan_study, run_study
from mscl.protocol.observers import CompositeObserver, ProgressObserver, progress_display


def train_study(data_dir: Path, cfg: ExperimentConfig, quiet: bool = False) -> list[StudyResult]:
    """Run ``cfg.strategy`` for every seed of ``cfg.protocol.seeds``, one MLflow parent run per seed.

    Returns:
        One :class:`StudyResult` per seed, in seed order.
    """
    from mscl.tracking.runs import MlflowStudyObserver, log_study_result, study_run
    from mscl.tracking.runs import use_tracking_uri

    use_tracking_uri(cfg.tracking.uri)
    console = Console(quiet=quiet)
    results = []
    with PreparedDataset(data_dir) as dataset:
        for seed in cfg.protocol.seeds:
            setup = plan_study(dataset, cfg, seed)
            started = time.perf_counter()
            with study_run(cfg, seed, setup, dataset) as (client, run_id), progress_display(quiet) as bar:
                stages = setup.strategy.plan(setup.order)
                observer = CompositeObserver(
                    [
                        MlflowStudyObserver(client, run_id, cfg),
                        ProgressObserver(bar, len(stages), _epochs(cfg), f"{cfg.strategy.name} seed {seed}"),
                    ]
                )
                result = run_study(dataset, cfg, seed, observer, setup)
                log_study_result(client, run_id, result, time.perf_counter() - started)
            console.print(result_table(result, run_id))
            results.append(result)
    return results


def _epochs(cfg: ExperimentConfig) -> int:
    return min(cfg.train.epochs, cfg.train.max_epochs or cfg.train.epochs)


def result_table(result: StudyResult, run_id: str) -> Table:
    """The R matrix of a study with its BWT, as a rich table."""
    from mscl.tracking.runs import study_metrics

    metrics = study_metrics(result)
    summary = ", ".join(f"{k} {metrics[k]:+.3f}" for k in ("acc", "bwt", "fwt") if k in metrics)
    table = Table(title=f"{result.strategy} seed {result.seed} (run {run_id[:8]}): {summary}")
    table.add_column("after stage")
    for center in result.centers:
        table.add_column(center, justify="right")
    table.add_row("untrained", *(f"{result.baseline[c]:.3f}" for c in result.centers))
    for outcome, row in zip(result.stages, result.matrix, strict=True):
        table.add_row(outcome.stage.name, *(f"{v:.3f}" for v in row))
    return table
