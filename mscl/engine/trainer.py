"""One training stage: epochs of lesion-weighted patches from the stage's case cache.

The same for every strategy: a strategy only decides which cases fill the cache. An epoch visits every
case of the cache once, in a seeded random order (more passes, each in a fresh order, while it holds fewer
than ``min_cases_per_epoch`` cases); a step takes ``cases_per_step`` cases with ``patches_per_case`` patches
each (the paper: 4 x 4 = 16 patches); the last step of an epoch may hold fewer cases. AdamW, StepLR stepped
once per epoch, soft Dice loss, bf16 autocast on CUDA.

Every epoch's random streams (case order, patches, dropout) are seeded from ``(seed, epoch)``, so a stage
resumed from its :class:`StageState` continues exactly as an uninterrupted one would.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from mscl import faults
from mscl.config import TrainConfig
from mscl.engine.cache import CaseCache
from mscl.engine.device import autocast_context, configure_determinism
from mscl.engine.loss import soft_dice_loss
from mscl.engine.sampling import sample_patches

EpochCallback = Callable[[int, dict[str, float]], None]
ProgressCallback = Callable[[int, int], None]
LossTerm = Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor | None]
"""``(model, images, labels, prediction) -> extra loss or None``: a strategy's term added to soft Dice."""


@dataclass(frozen=True)
class StageState:
    """What resuming a stage needs: optimizer and scheduler state dicts and the epochs already done."""

    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    epoch: int


@dataclass(frozen=True)
class StageResult:
    """The outcome of :func:`train_stage` (the model itself is trained in place).

    Attributes:
        history: One entry per epoch run: ``epoch`` (0-based), ``loss`` (mean over the epoch's patches),
            ``lr`` (the epoch's learning rate), ``patches_per_s`` and ``seconds``.
        state: Optimizer, scheduler and epoch count after the last epoch, for a later resume.
        steps: Optimizer steps taken by this call.
    """

    history: list[dict[str, float]]
    state: StageState
    steps: int


def train_stage(
    model: nn.Module,
    cache: CaseCache,
    cfg: TrainConfig,
    *,
    epochs: int,
    seed: int,
    device: torch.device | None = None,
    on_epoch: EpochCallback | None = None,
    progress: ProgressCallback | None = None,
    resume: StageState | None = None,
    on_state: Callable[[StageState], None] | None = None,
    loss_term: LossTerm | None = None,
) -> StageResult:
    """Train ``model`` in place on the cases of ``cache``, on the cache's device.

    Args:
        model: The network (moved to the cache's device).
        cache: The stage's cases; its device is the training device.
        cfg: Patch size and counts, lesion fraction, augmentation, optimizer, scheduler, precision,
            determinism (``cfg.epochs`` is ignored in favour of ``epochs``).
        epochs: Total epochs of the stage (a resumed stage runs only the remaining ones).
        seed: Seeds case order, patch sampling and dropout of every epoch (torch's global generator, which
            dropout draws from, is re-seeded at every epoch).
        device: The training device, if given it must be the cache's (a check; the cache decides).
        on_epoch: Called after each epoch with its 0-based index and its metrics.
        progress: Called after each step with ``(steps done, total steps)`` of this call.
        resume: State returned by an earlier, interrupted call on the same model.
        on_state: Called after each epoch with the state a resume from that point needs.
        loss_term: A strategy's term added to the loss of every step (see :meth:`Strategy.loss_term
            <mscl.strategies.base.Strategy.loss_term>`).
    """
    if device is not None and not _same_device(torch.device(device), cache.device):
        raise ValueError(f"the case cache lives on {cache.device}, not on the training device {device}")
    device = cache.device
    configure_determinism(cfg.deterministic, device)
    model.to(device)
    optimizer = make_optimizer(model, cfg)
    scheduler = torch.optim.lr_scheduler.StepLR(
        optimizer, step_size=cfg.scheduler_step, gamma=cfg.scheduler_gamma
    )
    start = 0
    if resume is not None:
        optimizer.load_state_dict(resume.optimizer)
        scheduler.load_state_dict(resume.scheduler)
        start = resume.epoch
    epoch_cases = epoch_length(len(cache), cfg.min_cases_per_epoch)
    total_steps = math.ceil(epoch_cases / cfg.cases_per_step) * max(epochs - start, 0)
    steps = 0

    def tick() -> None:
        nonlocal steps
        steps += 1
        if progress is not None:
            progress(steps, total_steps)

    generator = torch.Generator(device=device)
    history: list[dict[str, float]] = []
    model.train()
    for epoch in range(start, epochs):
        epoch_seed = _epoch_seed(seed, epoch)
        generator.manual_seed(epoch_seed)
        torch.manual_seed(epoch_seed)
        lr = optimizer.param_groups[0]["lr"]
        began = time.perf_counter()
        loss = _run_epoch(model, optimizer, cache, epoch_cases, cfg, generator, tick, loss_term)
        seconds = time.perf_counter() - began
        scheduler.step()
        patches = epoch_cases * cfg.patches_per_case
        metrics = {"loss": loss, "lr": lr, "patches_per_s": patches / seconds, "seconds": seconds}
        history.append({"epoch": float(epoch), **metrics})
        if on_epoch is not None:
            on_epoch(epoch, metrics)
        if on_state is not None:
            on_state(StageState(optimizer.state_dict(), scheduler.state_dict(), epoch + 1))
    state = StageState(optimizer.state_dict(), scheduler.state_dict(), max(epochs, start))
    return StageResult(history=history, state=state, steps=steps)


def _run_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    cache: CaseCache,
    epoch_cases: int,
    cfg: TrainConfig,
    generator: torch.Generator,
    on_step: Callable[[], None],
    loss_term: LossTerm | None,
) -> float:
    """Visit every case once in a random order, as many passes as make ``epoch_cases`` (from
    :func:`epoch_length`), ``cases_per_step`` at a time; the mean loss per patch."""
    loss_sum = torch.zeros((), device=cache.device)
    passes = epoch_cases // len(cache)
    order = torch.cat(
        [torch.randperm(len(cache), generator=generator, device=cache.device) for _ in range(passes)]
    )
    for cases in order.split(cfg.cases_per_step):
        case_idx = cases[:, None].expand(-1, cfg.patches_per_case).reshape(-1)  # repeat_interleave, sync-free
        images, labels = sample_patches(
            cache,
            case_idx,
            cfg.patch_size,
            cfg.lesion_fraction,
            generator,
            flips=cfg.flips,
            rotations=cfg.rotations,
        )
        loss_sum += optimizer_step(model, optimizer, images, labels, cfg, loss_term) * case_idx.numel()
        on_step()
        faults.hit("step")
    return loss_sum.item() / (order.numel() * cfg.patches_per_case)


def epoch_length(cases: int, min_cases: int) -> int:
    """Cases one epoch visits: every one of ``cases`` once per pass, as many passes as reach ``min_cases``."""
    return cases * max(1, math.ceil(min_cases / cases)) if cases else 0


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW over ``model``'s parameters (fused kernels when the model is on CUDA)."""
    on_cuda = next(model.parameters()).device.type == "cuda"
    return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=on_cuda)


def optimizer_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    images: torch.Tensor,
    labels: torch.Tensor,
    cfg: TrainConfig,
    loss_term: LossTerm | None = None,
) -> torch.Tensor:
    """One training step (autocast forward, soft Dice plus the strategy's term, backward, optimizer step);
    returns the detached loss.

    Shared by :func:`train_stage` and the model-only benchmark (:mod:`mscl.bench`). The strategy's term is
    computed inside autocast, so a forward pass it runs (a frozen teacher) has the model's precision.
    """
    with autocast_context(images.device, cfg.precision):
        prediction = model(images)
        extra = loss_term(model, images, labels, prediction) if loss_term is not None else None
    loss = soft_dice_loss(prediction, labels)
    if extra is not None:
        loss = loss + extra.float()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


def _same_device(wanted: torch.device, actual: torch.device) -> bool:
    """``cuda`` matches any ``cuda:<index>``; otherwise type and index must agree."""
    return wanted.type == actual.type and (wanted.index is None or wanted.index == actual.index)


def _epoch_seed(seed: int, epoch: int) -> int:
    """An independent 63-bit seed for ``(seed, epoch)``."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1, dtype=np.uint64)[0] >> 1)
