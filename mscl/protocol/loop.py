"""The stage loop: one loop for every strategy, filling the R matrix stage by stage.

For a (strategy, seed): resolve the domain order, score the untrained model (the FWT baseline), then for
every planned stage build or carry the model, train on the stage's cases, score every center's test split
with the very weights that are carried on, and let the strategy update its memory.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from mscl.config import ExperimentConfig
from mscl.data.dataset import PreparedDataset
from mscl.data.manifest import CaseRecord
from mscl.engine.trainer import StageState
from mscl.protocol.checkpoints import PartialStage
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
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds per part of the stage: ``load``, ``cache``, ``train``, ``evaluate``, ``memory``."""


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


@dataclass
class ResumePoint:
    """What an interrupted study already did: finished stages (from MLflow) and a half-done stage."""

    finished: dict[int, StageOutcome] = field(default_factory=dict)
    last_weights: Callable[[], dict[str, Any]] | None = None
    partial: PartialStage | None = None


def run_study(
    dataset: PreparedDataset,
    cfg: ExperimentConfig,
    seed: int,
    observer: StudyObserver,
    setup: StudySetup | None = None,
    resume: ResumePoint | None = None,
) -> StudyResult:
    """Train and score every stage of one (strategy, seed) study.

    Args:
        dataset: the prepared dataset directory.
        cfg: the resolved experiment configuration.
        seed: drives initialisation, sampling, replay selection and (unless set apart) the order.
        observer: receives stage and epoch events (MLflow logging, checkpoints, progress).
        setup: centers, order and strategy from :func:`plan_study` (planned here when omitted).
        resume: finished stages to skip (their scores reused, the strategy's memory rebuilt from them)
            and a half-done stage to continue from its last resume point.
    """
    from mscl.engine.device import configure_determinism, resolve_device, seed_everything
    from mscl.models.unet import build_model

    setup = setup or plan_study(dataset, cfg, seed)
    resume = resume or ResumePoint()
    device = resolve_device(cfg.train.device)
    configure_determinism(cfg.train.deterministic, device)
    seed_everything(seed)
    initial = build_model(cfg.model, seed=seed).to(device)
    runner = _StageRunner(dataset, cfg, seed, device, setup.strategy, observer)
    baseline, _ = runner.score(initial)
    result = StudyResult(
        cfg.strategy.name, setup.strategy.kind, seed, setup.order, setup.order_kind, setup.centers, baseline
    )
    model = copy.deepcopy(initial)
    carried_from_mlflow = False
    try:
        for stage in setup.strategy.plan(setup.order):
            if stage.index in resume.finished:
                setup.strategy.after_stage(stage, runner.own_cases(stage))
                result.stages.append(resume.finished[stage.index])
                carried_from_mlflow = True
                continue
            if carried_from_mlflow and resume.last_weights is not None:
                model.load_state_dict(resume.last_weights())
                carried_from_mlflow = False
            model = stage_model(stage, model, initial, cfg, seed)
            partial = resume.partial if resume.partial and resume.partial.index == stage.index else None
            if partial is not None:
                model.load_state_dict(partial.model)
            outcome = runner.run(stage, model, partial.state if partial else None)
            result.stages.append(outcome)
            observer.stage_finished(outcome, model)
    finally:
        setup.strategy.close()
    return result


def stage_model(
    stage: StagePlan, model: torch.nn.Module, initial: torch.nn.Module, cfg: ExperimentConfig, seed: int
) -> torch.nn.Module:
    """A fresh copy of the initial weights, or the carried model (decoder re-initialised for ``encoder``)."""
    from mscl.models.unet import reinit_decoder

    if stage.fresh:
        return copy.deepcopy(initial)
    if cfg.strategy.carry_over == "encoder":
        reinit_decoder(model, seed=seed * 1000 + stage.index)
    return model


class _StageRunner:
    """Trains one stage on its cases and scores every center's test split."""

    def __init__(
        self,
        dataset: PreparedDataset,
        cfg: ExperimentConfig,
        seed: int,
        device: torch.device,
        strategy: Strategy,
        observer: StudyObserver,
    ) -> None:
        self.dataset, self.cfg, self.seed, self.device = dataset, cfg, seed, device
        self.strategy, self.observer = strategy, observer
        centers = select_centers(dataset.manifest.center_names(), cfg.protocol.centers)
        records = dataset.manifest.cases_of(split="test")
        self.tests = {center: list(_load_cases(dataset, records, [center])) for center in centers}

    def own_cases(self, stage: StagePlan) -> list[ExtraCase]:
        """The training-split cases of the stage's centers."""
        records = self.dataset.manifest.cases_of(split="train")
        return list(_load_cases(self.dataset, records, stage.train_centers))

    def run(self, stage: StagePlan, model: torch.nn.Module, resume: StageState | None) -> StageOutcome:
        """Train ``model`` in place on the stage's cases, score it, update the strategy's memory."""
        from mscl.data.cache import CaseCache
        from mscl.engine.trainer import train_stage

        self.observer.stage_started(stage)
        clock = _PartClock()
        with clock.part("load"):
            own = self.own_cases(stage)
            cases = own + self.strategy.extra_cases(stage)
        with clock.part("cache"):
            cache = CaseCache.from_arrays(
                [c.image for c in cases],
                [c.label for c in cases],
                device=self.device,
                min_shape=self.cfg.train.patch_size,
                case_ids=[c.key for c in cases],
            )
        with clock.part("train"):
            result = train_stage(
                model,
                cache,
                self.cfg.train,
                epochs=stage_epochs(self.cfg),
                seed=self.seed * 1000 + stage.index,
                device=self.device,
                on_epoch=lambda epoch, metrics: self.observer.epoch_finished(stage, epoch, metrics),
                on_state=lambda state: self.observer.stage_state(stage, model, state),
                resume=resume,
            )
            del cache
        with clock.part("evaluate"):
            scores, per_case = self.score(model)
        with clock.part("memory"):
            manifest = self.strategy.after_stage(stage, own)
        return StageOutcome(
            stage,
            scores,
            per_case,
            result.history,
            clock.total,
            memory_manifest=manifest,
            timings=clock.parts,
        )

    def score(self, model: torch.nn.Module) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
        """Dice per test case of every center, and each center's mean over its cases."""
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


class _PartClock:
    """Wall seconds spent in each named part of a stage (every part ends on a host read, so on CUDA the
    device work is inside the part that queued it)."""

    def __init__(self) -> None:
        self.parts: dict[str, float] = {}

    @contextmanager
    def part(self, name: str) -> Iterator[None]:
        began = time.perf_counter()
        try:
            yield
        finally:
            self.parts[name] = self.parts.get(name, 0.0) + time.perf_counter() - began

    @property
    def total(self) -> float:
        return sum(self.parts.values())


def stage_epochs(cfg: ExperimentConfig) -> int:
    """Epochs each stage trains: ``train.epochs`` capped by ``train.max_epochs``."""
    return min(cfg.train.epochs, cfg.train.max_epochs or cfg.train.epochs)


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
