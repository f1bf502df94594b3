"""Timing primitives: model-only and end-to-end training steps, sliding-window evaluation, memory loads.

Every figure is the best of several timed rounds (as :mod:`timeit` recommends: the fastest round is the one
least disturbed by other work on the machine), after an untimed warm-up round. On CUDA the clock reads only
after :func:`torch.cuda.synchronize`. Model-only and end-to-end rounds alternate, so that a change in the
machine's load hits both alike.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from mscl.config import ExperimentConfig, TrainConfig
from mscl.engine.cache import CaseCache
from mscl.engine.device import configure_determinism
from mscl.engine.evaluation import TestCase, evaluate_centers
from mscl.engine.trainer import (
    LossTerm,
    StageState,
    epoch_length,
    make_optimizer,
    optimizer_step,
    train_stage,
)
from mscl.memory_backends.base import SampleMeta
from mscl.memory_backends.registry import MEMORY_BACKENDS
from mscl.models.unet import build_model
from mscl.strategies.base import ExtraCase, StageContext, StagePlan
from mscl.strategies.replay_memory import ReplayMemory, ReplayPolicy

Case = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class TrainingRates:
    """Patches per second of the model alone and of the whole training path, with the cache's cost."""

    model_only: float
    end_to_end: float
    steps_per_round: int
    rounds: int
    cache_build_s: float
    cache_mb: float
    cases: int


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work (a no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device: torch.device, work: Callable[[], object]) -> float:
    """Seconds ``work`` takes, device work included."""
    synchronize(device)
    began = time.perf_counter()
    work()
    synchronize(device)
    return time.perf_counter() - began


def build_cache(
    cases: Sequence[Case], cfg: ExperimentConfig, device: torch.device
) -> tuple[CaseCache, float]:
    """The stage cache of ``cases`` as training builds it, and the seconds it took."""
    built: list[CaseCache] = []

    def build() -> None:
        built.append(
            CaseCache.from_arrays(
                [image for image, _ in cases],
                [label for _, label in cases],
                device,
                min_shape=cfg.train.patch_size,
            )
        )

    seconds = timed(device, build)
    return built[0], seconds


def training_rates(
    cases: Sequence[Case], cfg: ExperimentConfig, device: torch.device, steps: int
) -> TrainingRates:
    """Model-only and end-to-end patches/s of the training step of ``cfg`` on ``device``.

    End to end is :func:`mscl.engine.trainer.train_stage` itself, one epoch of the stage cache per round:
    sampling, augmentation, model and optimizer, exactly as a study trains. Model-only runs the same step
    (:func:`mscl.engine.trainer.optimizer_step`, same model, precision and determinism settings) on fixed
    random tensors, with the epoch's own batch sizes (a last step of fewer cases included), so the two
    differ by the data pipeline alone.

    Args:
        cases: The stage's ``(image, label)`` pairs.
        cfg: Model and training settings.
        device: Where to train.
        steps: Timed steps at least, per figure.
    """
    train = cfg.train
    cache, cache_s = build_cache(cases, cfg, device)
    cases_per_epoch = epoch_length(len(cache), train.min_cases_per_epoch)
    batches = epoch_batches(cases_per_epoch, train.cases_per_step, train.patches_per_case)
    per_round = len(batches)
    rounds = max(2, math.ceil(steps / per_round))
    generator = torch.Generator(device=device).manual_seed(0)
    shape = (max(batches), 1, *train.patch_size)
    images = torch.randn(shape, generator=generator, device=device)
    labels = (torch.rand(shape, generator=generator, device=device) < 0.05).float()
    model = build_model(cfg.model, seed=0).to(device)
    configure_determinism(train.deterministic, device)
    optimizer = make_optimizer(model, train)
    staged = StageRounds(build_model(cfg.model, seed=0).to(device), cache, train)

    def model_round() -> None:
        for batch in batches:
            optimizer_step(model, optimizer, images[:batch], labels[:batch], train)

    model_best, stage_best = 0.0, 0.0
    for epoch in range(rounds + 1):  # round 0 warms both up
        model_rate = sum(batches) / timed(device, model_round)
        stage_rate = staged.run()
        if epoch:
            model_best, stage_best = max(model_best, model_rate), max(stage_best, stage_rate)
    return TrainingRates(model_best, stage_best, per_round, rounds, cache_s, cache.nbytes / 1e6, len(cache))


class StageRounds:
    """Epochs of :func:`~mscl.engine.trainer.train_stage` one at a time (resumed from the last), each
    returning its patches/s: the end-to-end rate as a study trains, with a strategy's loss term if given."""

    def __init__(
        self, model: torch.nn.Module, cache: CaseCache, train: TrainConfig, loss_term: LossTerm | None = None
    ) -> None:
        self.model, self.cache, self.train, self.loss_term = model, cache, train, loss_term
        self.state: StageState | None = None
        self.epochs = 0

    def run(self) -> float:
        """Train one more epoch; its patches/s."""
        self.epochs += 1
        result = train_stage(
            self.model, self.cache, self.train, epochs=self.epochs, seed=0, resume=self.state,
            loss_term=self.loss_term,
        )  # fmt: skip
        self.state = result.state
        return result.history[-1]["patches_per_s"]


def strategy_rates(
    cases: Sequence[Case], cfg: ExperimentConfig, device: torch.device, rounds: int, names: Sequence[str]
) -> dict[str, float]:
    """End-to-end patches/s of each strategy's training step as in its second stage (best of ``rounds``
    epochs after one warm-up): the strategy first acts after a stage on ``cases`` (EWC estimates its Fisher,
    LwF keeps its teacher, replay fills its memory), then trains with its loss term."""
    from mscl.config import validate_mapping
    from mscl.strategies import build_strategy

    cache, _ = build_cache(cases, cfg, device)
    own = [
        ExtraCase(f"bench{i}", image, label, {"center": "bench", "subject": f"s{i}", "contrast": "FLAIR",
                  "lesion_voxels": int((label >= 0.5).sum())})
        for i, (image, label) in enumerate(cases)
    ]  # fmt: skip
    rates = {}
    for name in names:
        section = {"name": name, "carry_over": cfg.strategy.carry_over}  # that strategy's defaults otherwise
        named = validate_mapping({**cfg.model_dump(mode="json"), "strategy": section})
        strategy = build_strategy(named, seed=0)
        try:
            model = build_model(cfg.model, seed=0).to(device)
            first = StageContext(
                StagePlan(0, "bench", ("bench",), fresh=True), model, own, device, cfg.train, 0
            )
            strategy.after_stage(first)  # what a first stage leaves: importances, a teacher, a memory
            strategy.before_stage(
                replace(first, stage=StagePlan(1, "bench", ("bench",), fresh=False), seed=1)
            )
            stage = StageRounds(model, cache, cfg.train, strategy.loss_term)
            stage.run()  # warm-up
            rates[name] = max(stage.run() for _ in range(rounds))
        finally:
            strategy.close()
    return rates


def epoch_batches(cases: int, cases_per_step: int, patches_per_case: int) -> list[int]:
    """Patches of each step of one epoch over ``cases`` cases (the last step may hold fewer cases)."""
    firsts = range(0, cases, cases_per_step)
    return [min(cases_per_step, cases - first) * patches_per_case for first in firsts]


def evaluation_rate(
    cases: Sequence[Case], cfg: ExperimentConfig, device: torch.device, rounds: int = 2
) -> float:
    """Volumes per second of the post-stage evaluation (sliding window with ``eval.window_batch``, then every
    metric of ``eval.metrics``)."""
    model = build_model(cfg.model, seed=0).to(device)
    named = [(f"case{i}", image, label, cfg.data.spacing) for i, (image, label) in enumerate(cases)]

    def evaluate(subset: Sequence[TestCase]) -> None:
        evaluate_centers(
            model, {"bench": subset}, cfg.eval, cfg.train.patch_size, device, cfg.train.precision
        )

    evaluate(named[:1])
    return len(named) / min(timed(device, lambda: evaluate(named)) for _ in range(rounds))


def memory_load_rates(cases: Sequence[Case], compression: bool, rounds: int = 2) -> dict[str, float]:
    """MB/s of :meth:`ReplayMemory.load_all` for every registered backend, and of a plain numpy copy.

    The stores are written to a temporary folder (removed afterwards); writing is not timed. Loading
    includes the checksum verification a stage does.
    """
    megabytes = sum(image.nbytes + label.nbytes for image, label in cases) / 1e6
    cpu = torch.device("cpu")

    def copy() -> None:
        for image, label in cases:
            image.copy(), label.copy()

    rates = {"numpy_copy": megabytes / min(timed(cpu, copy) for _ in range(rounds))}
    with tempfile.TemporaryDirectory(prefix="mscl-bench-") as folder:
        for name in MEMORY_BACKENDS.names():
            backend_cls = MEMORY_BACKENDS.get(name)
            path = Path(folder) / f"{name}{getattr(backend_cls, 'suffix', '')}"
            with backend_cls(path, mode="a", compression=compression) as backend:
                for i, (image, label) in enumerate(cases):
                    meta = SampleMeta(center="bench", subject=f"s{i}", contrast="FLAIR", lesion_voxels=0)
                    backend.put(f"case{i}", image, label, meta)
                memory = ReplayMemory(backend, ReplayPolicy())
                rates[name] = megabytes / min(timed(cpu, memory.load_all) for _ in range(rounds))
    return rates
