"""Typed Python entry points behind the CLI: usable from tests, notebooks and MLflow entry points."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from mscl.config import ExperimentConfig
from mscl.data.dataset import PreparedDataset
from mscl.data.predictions import PredictionWriter
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


def evaluate_run(
    run_id: str,
    data_dir: Path,
    *,
    stage: int | None = None,
    split: str = "test",
    save_predictions: Path | None = None,
    tracking_uri: str | None = None,
    quiet: bool = False,
) -> dict[str, dict[str, float]]:
    """Score a logged stage checkpoint on a prepared dataset and log the result as an ``evaluate`` run.

    Args:
        run_id: a parent run (its last stage, or ``stage``) or a stage run.
        data_dir: any prepared dataset directory, e.g. a new hospital.
        stage: 1-based stage of a parent run; default the last.
        split: ``test``, ``train`` or ``all`` cases of the dataset.
        save_predictions: folder for soft-segmentation NIfTI files in the prepared space.

    Returns:
        ``{center: {case_id: dice}}``.
    """
    from mlflow.tracking import MlflowClient

    from mscl.engine.device import resolve_device
    from mscl.engine.metrics import evaluate_cases
    from mscl.tracking.checkpoints import load_stage_model, run_config, stage_run
    from mscl.tracking.runs import log_evaluation, use_tracking_uri

    client = MlflowClient(use_tracking_uri(tracking_uri))
    run = stage_run(client, run_id, stage)
    cfg = run_config(client, run)
    device = resolve_device(cfg.train.device)
    model = load_stage_model(client, run, cfg).to(device)
    scores: dict[str, dict[str, float]] = {}
    with PreparedDataset(data_dir) as dataset:
        writer = PredictionWriter(save_predictions, dataset) if save_predictions else None
        records = dataset.manifest.cases_of(split=None if split == "all" else split)  # type: ignore[arg-type]
        for center in dataset.manifest.center_names():
            cases = [(r.id, *dataset.load(r.id)) for r in records if r.center == center]
            if not cases:
                continue
            scores[center] = evaluate_cases(
                model, cases, cfg.eval, cfg.train.patch_size, device, cfg.train.precision,
                on_prediction=writer.write if writer else None,
            )
        log_evaluation(client, run, dataset, scores, split)
    Console(quiet=quiet).print(evaluation_table(scores, run.info.run_name or run.info.run_id))
    return scores


def evaluation_table(scores: dict[str, dict[str, float]], source: str) -> Table:
    """Per-center Dice (mean, std, cases) of an evaluation, as a rich table."""
    table = Table(title=f"Dice of {source}")
    for column in ("center", "cases", "mean Dice", "std"):
        table.add_column(column, justify="left" if column == "center" else "right")
    for center, values in scores.items():
        dice = np.array(list(values.values()), dtype=float)
        table.add_row(center, str(dice.size), f"{np.nanmean(dice):.3f}", f"{np.nanstd(dice):.3f}")
    return table
