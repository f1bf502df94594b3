"""The stage loop: one loop for every strategy, filling the R matrix stage by stage.

For a (strategy, seed): resolve the domain order, score the untrained model (the FWT baseline), then for
every planned stage build or carry the model, train on the stage's cases, score every center's test split
with the very weights that are carried on, and let the strategy update its memory.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from mscl.config import ExperimentConfig
from mscl.data.dataset import PreparedDataset
from mscl.data.manifest import CaseRecord
from mscl.protocol.observers import StudyObserver
from mscl.protocol.order import order_kind, resolve_order, select_centers
from mscl.strategies import build_strategy
from mscl.strategies.base import ExtraCase, StagePlan, Strategy


@dataclass
class StageOutcome:
    """What one stage produced."""

    stage: StagePlan
    scores: dict[str, float]
    per_case: dict[str, dict[str, float]]
    history: list[dict[str, float]]
    seconds: float
    memory_manifest: dict[str, Any] | None = None


@dataclass
class StudyResult:
    """A finished (strategy, seed) study."""

    strategy: str
    kind: str
    seed: int
    order: list[str]
    order_kind: str
    centers: list[str]
    baseline: dict[str, float]
    stages: list[StageOutcome] = field(default_factory=list)

    @property
    def matrix(self) -> np.ndarray:
        """R: one row per stage, one column per center (canonical order)."""
        return np.array([[s.scores[c] for c in self.centers] for s in self.stages], dtype=float)


@dataclass
class StudySetup:
    """Everything fixed before the first stage: centers, order, strategy."""

    centers: list[str]
    order: list[str]
    order_kind: str
    strategy: Strategy


def plan_study(dataset: PreparedDataset, cfg: ExperimentConfig, seed: int) -> StudySetup:
    """Resolve centers, domain order and strategy for one seed."""
    manifest = dataset.manifest
    centers = select_centers(manifest.center_names(), cfg.protocol.centers)
    subjects = {c.name: c.subjects for c in manifest.centers if c.name in centers}
    order_seed = cfg.protocol.order_seed if cfg.protocol.order_seed is not None else seed
    order = resolve_order(cfg.protocol.order, subjects, order_seed)
    return StudySetup(centers, order, order_kind(cfg.protocol.order), build_strategy(cfg, seed))


def run_study(
    dataset: PreparedDataset,
    cfg: ExperimentConfig,
    seed: int,
    observer: StudyObserver,
    setup: StudySetup | None = None,
) -> StudyResult:
    """Train and score every stage of one (strategy, seed) study.

    Args:
        dataset: the prepared dataset directory.
        cfg: the resolved experiment configuration.
        seed: drives initialisation, sampling, replay selection and (unless set apart) the order.
        observer: receives stage and epoch events (MLflow logging, progress).
        setup: centers, order and strategy from :func:`plan_study` (planned here when omitted).
    """
    from mscl.engine.device import configure_determinism, resolve_device, seed_everything
    from mscl.models.unet import build_model

    setup = setup or plan_study(dataset, cfg, seed)
    device = resolve_device(cfg.train.device)
    configure_determinism(cfg.train.deterministic, device)
    seed_everything(seed)
    initial = build_model(cfg.model, seed=seed).to(device)
    tests = _test_cases(dataset, setup.centers)
    scorer = _Scorer(cfg, device, tests)
    baseline, _ = scorer.score(initial)
    result = StudyResult(
        cfg.strategy.name, setup.strategy.kind, seed, setup.order, setup.order_kind, setup.centers, baseline
    )
    model = copy.deepcopy(initial)
    try:
        for stage in setup.strategy.plan(setup.order):
            model = _stage_model(stage, model, initial, cfg, seed)
            outcome = _run_stage(stage, model, dataset, setup.strategy, scorer, cfg, seed, device, observer)
            result.stages.append(outcome)
            observer.stage_finished(outcome, model)
    finally:
        setup.strategy.close()
    return result


def _stage_model(
    stage: StagePlan, model: torch.nn.Module, initial: torch.nn.Module, cfg: ExperimentConfig, seed: int
) -> torch.nn.Module:
    """A fresh copy of the initial weights, or the carried model (decoder re-initialised for ``encoder``)."""
    from mscl.models.unet import reinit_decoder

    if stage.fresh:
        return copy.deepcopy(initial)
    if cfg.strategy.carry_over == "encoder":
        reinit_decoder(model, seed=seed * 1000 + stage.index)
    return model


def _run_stage(
    stage: StagePlan,
    model: torch.nn.Module,
    dataset: PreparedDataset,
    strategy: Strategy,
    scorer: _Scorer,
    cfg: ExperimentConfig,
    seed: int,
    device: torch.device,
    observer: StudyObserver,
) -> StageOutcome:
    from mscl.data.cache import CaseCache
    from mscl.engine.trainer import train_stage

    observer.stage_started(stage)
    started = time.perf_counter()
    own = list(_load_cases(dataset, dataset.manifest.cases_of(split="train"), stage.train_centers))
    cases = own + strategy.extra_cases(stage)
    cache = CaseCache.from_arrays(
        [c.image for c in cases],
        [c.label for c in cases],
        device=device,
        min_shape=cfg.train.patch_size,
        case_ids=[c.key for c in cases],
    )
    epochs = min(cfg.train.epochs, cfg.train.max_epochs or cfg.train.epochs)
    result = train_stage(
        model,
        cache,
        cfg.train,
        epochs=epochs,
        seed=seed * 1000 + stage.index,
        device=device,
        on_epoch=lambda epoch, metrics: observer.epoch_finished(stage, epoch, metrics),
    )
    del cache
    scores, per_case = scorer.score(model)
    manifest = strategy.after_stage(stage, own)
    return StageOutcome(
        stage, scores, per_case, result.history, time.perf_counter() - started, memory_manifest=manifest
    )


def _load_cases(
    dataset: PreparedDataset, records: Sequence[CaseRecord], centers: Sequence[str]
) -> Iterator[ExtraCase]:
    for record in records:
        if record.center in centers:
            image, label = dataset.load(record.id)
            meta = {
                "center": record.center,
                "subject": record.subject,
                "contrast": record.contrast,
                "lesion_voxels": record.lesion_voxels,
            }
            yield ExtraCase(record.id, image, label, meta)


def _test_cases(dataset: PreparedDataset, centers: Sequence[str]) -> dict[str, list[ExtraCase]]:
    records = dataset.manifest.cases_of(split="test")
    return {center: list(_load_cases(dataset, records, [center])) for center in centers}


class _Scorer:
    """Scores a model on every center's test cases: Dice per case, center = mean over its cases."""

    def __init__(self, cfg: ExperimentConfig, device: torch.device, tests: dict[str, list[ExtraCase]]):
        self.cfg, self.device, self.tests = cfg, device, tests

    def score(self, model: torch.nn.Module) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
        from mscl.engine.metrics import evaluate_cases

        per_case = {
            center: evaluate_cases(
                model,
                ((c.key, c.image, c.label) for c in cases),
                self.cfg.eval,
                self.cfg.train.patch_size,
                self.device,
                self.cfg.train.precision,
            )
            for center, cases in self.tests.items()
        }
        scores = {
            center: float(np.nanmean(list(values.values()))) if values else float("nan")
            for center, values in per_case.items()
        }
        return scores, per_case
