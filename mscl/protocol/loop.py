"""The stage loop: one loop for every strategy, filling the R matrix stage by stage.

For a (strategy, seed): resolve the domain order, score the untrained model (the FWT baseline), then for
every planned stage build or carry the model, train on the stage's cases, score every center's test split
with every configured metric using the very weights that are carried on, calling the strategy's hooks
(:mod:`mscl.strategies.base`) on the way.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from mscl import faults
from mscl.config import ExperimentConfig
from mscl.data.dataset import PreparedDataset
from mscl.data.manifest import CaseRecord
from mscl.errors import ConfigError
from mscl.protocol.checkpoints import PartialStage
from mscl.protocol.observers import StudyObserver
from mscl.protocol.order import order_kind, resolve_order, select_centers
from mscl.protocol.results import CaseScores, CenterScores, StageOutcome, StudyResult
from mscl.strategies import build_strategy
from mscl.strategies.base import ExtraCase, StageContext, StagePlan, Strategy

if TYPE_CHECKING:
    from mscl.models.unet import SegmentationNet


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
    try:
        strategy = build_strategy(cfg, seed)
    except OSError as exc:  # a strategy's folders (a replay memory's) that cannot be created
        where = f" {exc.filename}" if exc.filename else ""
        problem = exc.strerror or type(exc).__name__
        raise ConfigError(f"strategy {cfg.strategy.name}: cannot set up{where} ({problem})") from None
    return StudySetup(centers, order, order_kind(cfg.protocol.order), strategy)


@dataclass(frozen=True)
class StageCheckpoint:
    """A finished stage's weights and the strategy state saved with them."""

    weights: dict[str, Any]
    strategy_state: dict[str, Any] = field(default_factory=dict)


@dataclass
class ResumePoint:
    """What an interrupted study already did: finished stages (from MLflow) and a half-done stage."""

    finished: dict[int, StageOutcome] = field(default_factory=dict)
    last_checkpoint: Callable[[], StageCheckpoint] | None = None
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
        resume: finished stages to skip (their scores reused, the weights and strategy state of the last
            one restored from its checkpoint) and a half-done stage to continue from its resume point.
    """
    from mscl.engine.device import configure_determinism, resolve_device, seed_everything
    from mscl.models.unet import build_model

    setup = setup or plan_study(dataset, cfg, seed)
    strategy = setup.strategy
    resume = resume or ResumePoint()
    device = resolve_device(cfg.train.device)
    configure_determinism(cfg.train.deterministic, device)
    if cfg.train.threads is not None:
        torch.set_num_threads(cfg.train.threads)
    seed_everything(seed)
    initial = build_model(cfg.model, seed=seed).to(device)
    tests = test_cases(dataset, setup.centers)
    runner = StageRunner(dataset, tests, cfg, seed, device, strategy, observer)
    baseline, _ = runner.score(initial)
    result = StudyResult(
        cfg.strategy.name,
        strategy.kind,
        seed,
        setup.order,
        setup.order_kind,
        setup.centers,
        list(cfg.eval.metrics),
        baseline,
    )
    model = copy.deepcopy(initial)
    carried_from_mlflow = False
    try:
        for stage in strategy.plan(setup.order):
            if stage.index in resume.finished:
                strategy.restore_stage(stage, runner.own_cases(stage))
                result.stages.append(resume.finished[stage.index])
                carried_from_mlflow = True
                continue
            if carried_from_mlflow and resume.last_checkpoint is not None:
                checkpoint = resume.last_checkpoint()
                model.load_state_dict(checkpoint.weights)
                strategy.load_state_dict(checkpoint.strategy_state)
                carried_from_mlflow = False
            model = stage_model(stage, model, initial, cfg, seed)
            partial = resume.partial if resume.partial and resume.partial.index == stage.index else None
            outcome = runner.run(stage, model, partial)
            result.stages.append(outcome)
            observer.stage_finished(outcome, model)
    finally:
        strategy.close()
    return result


def stage_model(
    stage: StagePlan, model: SegmentationNet, initial: SegmentationNet, cfg: ExperimentConfig, seed: int
) -> SegmentationNet:
    """A fresh copy of the initial weights, or the carried model (decoder re-initialised for ``encoder``)."""
    from mscl.models.unet import reinit_decoder

    if stage.fresh:
        return copy.deepcopy(initial)
    if cfg.strategy.carry_over == "encoder":
        reinit_decoder(model, seed=seed * 1000 + stage.index)
    return model


TestCases = Mapping[str, Sequence[ExtraCase]]
"""Every center's test cases, in column order; a center without any (not available) scores NaN."""


def test_cases(dataset: PreparedDataset, centers: Sequence[str]) -> dict[str, list[ExtraCase]]:
    """The test-split cases of each of ``centers`` in ``dataset``, checksums verified."""
    records = dataset.manifest.cases_of(split="test")
    return {center: list(_load_cases(dataset, records, [center])) for center in centers}


class StageRunner:
    """Trains one stage on its cases, calling the strategy's hooks, and scores every center's test split.

    Args:
        train: the dataset holding the training split of every stage this runner trains.
        tests: every center's test cases (see :data:`TestCases`).
    """

    def __init__(
        self,
        train: PreparedDataset,
        tests: TestCases,
        cfg: ExperimentConfig,
        seed: int,
        device: torch.device,
        strategy: Strategy,
        observer: StudyObserver,
    ) -> None:
        self.train, self.tests, self.cfg, self.seed, self.device = train, tests, cfg, seed, device
        self.strategy, self.observer = strategy, observer

    def own_cases(self, stage: StagePlan) -> list[ExtraCase]:
        """The training-split cases of the stage's centers."""
        records = self.train.manifest.cases_of(split="train")
        return list(_load_cases(self.train, records, stage.train_centers))

    def run(self, stage: StagePlan, model: torch.nn.Module, partial: PartialStage | None) -> StageOutcome:
        """Train ``model`` in place on the stage's cases (from ``partial`` when resuming), score it, and
        let the strategy act after the stage."""
        from mscl.engine.cache import CaseCache
        from mscl.engine.trainer import train_stage

        self.observer.stage_started(stage)
        clock = _PartClock()
        with clock.part("load"):
            own = self.own_cases(stage)
            cases = own + self.strategy.extra_cases(stage)
        stage_seed = self.seed * 1000 + stage.index
        context = StageContext(stage, model, own, self.device, self.cfg.train, stage_seed)
        if partial is not None:
            self.strategy.load_state_dict(partial.strategy_state)
        self.strategy.before_stage(context)
        if partial is not None:
            model.load_state_dict(partial.model)
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
                seed=stage_seed,
                device=self.device,
                on_epoch=lambda epoch, metrics: self.observer.epoch_finished(stage, epoch, metrics),
                on_state=lambda state: self.observer.stage_state(stage, model, state),
                resume=partial.state if partial else None,
                loss_term=self.strategy.loss_term,
            )
            del cache
        with clock.part("evaluate"):
            scores, per_case = self.score(model)
        with clock.part("memory"):
            manifest = self.strategy.after_stage(context)
        return StageOutcome(
            stage,
            scores,
            per_case,
            result.history,
            clock.total,
            memory_manifest=manifest,
            strategy_state=self.strategy.state_dict(),
            timings=clock.parts,
        )

    def score(
        self, model: torch.nn.Module, centers: Sequence[str] | None = None
    ) -> tuple[CenterScores, CaseScores]:
        """Every metric per test case of every center (or of ``centers``), and each center's mean."""
        from mscl.engine.evaluation import evaluate_centers

        faults.hit("evaluate")
        chosen = self.tests if centers is None else {center: self.tests[center] for center in centers}
        evaluation = evaluate_centers(
            model,
            {center: (_test_case(c) for c in cases) for center, cases in chosen.items()},
            self.cfg.eval,
            self.cfg.train.patch_size,
            self.device,
            self.cfg.train.precision,
        )
        return evaluation.means(), evaluation.per_case


def _test_case(case: ExtraCase) -> tuple[str, np.ndarray, np.ndarray, Sequence[float]]:
    return case.key, case.image, case.label, case.meta["spacing"]


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
                "spacing": record.spacing,
            }
            yield ExtraCase(record.id, image, label, meta)
