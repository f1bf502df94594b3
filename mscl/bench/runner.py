"""Run every measurement of ``mscl bench`` on synthetic volumes or on a prepared dataset's first stage."""

from __future__ import annotations

import os
import platform
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from mscl import __version__
from mscl.bench.measure import Case, evaluation_rate, memory_load_rates, strategy_rates, training_rates
from mscl.bench.projection import project_replay_run
from mscl.bench.report import BenchReport
from mscl.config import ExperimentConfig
from mscl.data.dataset import PreparedDataset
from mscl.engine.device import autocast_dtype, resolve_device

# Extent of a brain cropped with the default margin, in mm: synthetic volumes are this at the preset's spacing
# (tiny 6 mm: 28 x 33 x 28 voxels, quick 3 mm: 55 x 66 x 55, paper 1 mm: 165 x 198 x 165).
CROPPED_BRAIN_MM = (165.0, 198.0, 165.0)
LESION_DENSITY = 0.002  # share of synthetic voxels labelled lesion
STEPS_PER_SYNTHETIC_EPOCH = 4

Note = Callable[[str], None]


def run_bench(
    cfg: ExperimentConfig,
    *,
    data_dir: Path | None = None,
    steps: int = 16,
    eval_cases: int = 2,
    memory_cases: int = 4,
    strategies: Sequence[str] = (),
    note: Note | None = None,
) -> BenchReport:
    """Measure the training pipeline of ``cfg`` on ``cfg.train.device``.

    Args:
        cfg: Model, training, evaluation and memory settings (a preset plus overrides).
        data_dir: A prepared dataset: its first stage's training cases are cached and trained on, its first
            test cases evaluated. Default: random volumes of the preset's size (see :data:`CROPPED_BRAIN_MM`).
        steps: Timed training steps at least, for each of model-only and end-to-end.
        eval_cases: Volumes per timed evaluation round.
        memory_cases: Cases written to and loaded from every memory backend.
        strategies: Strategies whose training step is timed end to end with their loss terms on (as in a
            second stage), against the same run's model-only step.
        note: Called with a line before each measurement (progress).
    """
    say = note or (lambda _: None)
    device = resolve_device(cfg.train.device)
    stage, tests, source = _bench_cases(cfg, data_dir, eval_cases)
    say(f"training: {len(stage)} cases, model only and end to end")
    rates = training_rates(stage, cfg, device, steps)
    say(f"strategies: {', '.join(strategies) or 'none'}")
    per_strategy = strategy_rates(stage, cfg, device, rates.rounds, strategies)
    say(f"evaluation: {len(tests)} volumes")
    volumes_per_s = evaluation_rate(tests, cfg, device)
    say(f"memory backends: {min(memory_cases, len(stage))} cases")
    memory = memory_load_rates(stage[:memory_cases], cfg.memory.compression)
    dtype = autocast_dtype(device, cfg.train.precision)
    return BenchReport(
        environment={
            "device": str(device),
            "device_name": _device_name(device),
            "torch": torch.__version__,
            "mscl": __version__,
            "threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(),
        },
        settings={
            "preset": cfg.preset,
            "data": source,
            "stage_case_shape": list(stage[0][0].shape),
            "model_channels": list(cfg.model.channels),
            "patch_size": list(cfg.train.patch_size),
            "patches_per_step": cfg.train.cases_per_step * cfg.train.patches_per_case,
            "precision": str(dtype).removeprefix("torch.") if dtype else "float32",
            "deterministic": cfg.train.deterministic and device.type == "cpu",
            "window_batch": cfg.eval.window_batch,
        },
        training={
            "model_only_patches_per_s": rates.model_only,
            "end_to_end_patches_per_s": rates.end_to_end,
            "steps_per_round": rates.steps_per_round,
            "rounds": rates.rounds,
            "cases": rates.cases,
            "cache_build_s": rates.cache_build_s,
            "cache_mb": rates.cache_mb,
        },
        ratio=rates.end_to_end / rates.model_only,
        strategies={
            name: {"end_to_end_patches_per_s": rate, "vs_model_only": rate / rates.model_only}
            for name, rate in per_strategy.items()
        },
        inference_volumes_per_s=volumes_per_s,
        memory_mb_per_s=memory,
        projection=project_replay_run(rates.end_to_end, volumes_per_s).to_dict(),
    )


def synthetic_cases(cfg: ExperimentConfig, count: int, seed: int = 0) -> list[Case]:
    """``count`` float16 ``(image, label)`` pairs of noise and scattered lesion voxels, brain-sized."""
    shape = tuple(
        max(round(mm / cfg.synthetic.spacing_mm), p)
        for mm, p in zip(CROPPED_BRAIN_MM, cfg.train.patch_size, strict=True)
    )
    rng = np.random.default_rng(seed)
    return [
        (
            rng.standard_normal(shape, dtype=np.float32).astype(np.float16),
            (rng.random(shape, dtype=np.float32) < LESION_DENSITY).astype(np.float16),
        )
        for _ in range(count)
    ]


def _bench_cases(
    cfg: ExperimentConfig, data_dir: Path | None, eval_cases: int
) -> tuple[list[Case], list[Case], str]:
    """Stage cases, evaluation cases and a description of where they come from."""
    if data_dir is None:
        cases = synthetic_cases(cfg, STEPS_PER_SYNTHETIC_EPOCH * cfg.train.cases_per_step + eval_cases)
        return cases[eval_cases:], cases[:eval_cases], "synthetic"
    from mscl.protocol.loop import plan_study

    with PreparedDataset(data_dir) as dataset:
        setup = plan_study(dataset, cfg, cfg.protocol.seeds[0])
        setup.strategy.close()
        first = setup.order[0]
        stage = [dataset.load(r.id) for r in dataset.manifest.cases_of(center=first, split="train")]
        tests = [dataset.load(r.id) for r in dataset.manifest.cases_of(split="test")[:eval_cases]]
    return stage, tests, f"{data_dir} (stage 1: {first})"


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"
