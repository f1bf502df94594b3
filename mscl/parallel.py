"""Several seeds of one study at once: ``mscl train --seeds 9 --parallel N``.

The seeds are dealt round-robin to N worker processes (spawned, so each has its own torch and MLflow state);
each worker runs :func:`mscl.api.train_study` for its seeds one at a time, every seed in its own MLflow
parent run, exactly as a sequential run would (same config, same seed, same R matrix on CPU).

- CPU threads are split: each worker runs ``max(1, cores // N)`` torch threads.
- CUDA: with several GPUs and ``train.device`` ``auto`` or ``cuda``, worker ``i`` sees only GPU
  ``i % gpus`` (``CUDA_VISIBLE_DEVICES``); with one GPU (or ``cuda:<k>``) the workers share it.
- MLflow: the parent creates the tracking store's tables and the experiment before any worker starts
  (with ``sqlite:///`` two processes creating them at once collide). After that each worker writes its own
  runs; SQLite serialises the writers, each write waiting up to its busy timeout for the lock.
- A failing seed stops its worker's remaining seeds; the other workers finish theirs. Then
  :class:`SeedsFailed` names every failed and every skipped seed (exit code 2 for user errors, 1 otherwise).
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

from rich.console import Console

from mscl.config import ExperimentConfig
from mscl.errors import ConfigError, MsclError
from mscl.protocol.results import StudyResult


@dataclass(frozen=True)
class SeedFailure:
    """Why one seed failed: the error's one-line message and the exit code it maps to."""

    seed: int
    message: str
    exit_code: int


@dataclass
class WorkerOutcome:
    """What one worker brings back: finished studies, at most one failure, and the seeds it never ran."""

    results: list[StudyResult] = field(default_factory=list)
    failure: SeedFailure | None = None
    skipped: list[int] = field(default_factory=list)


class SeedsFailed(MsclError):
    """One or more seeds of a parallel study failed; the message names each with its error."""

    def __init__(self, failures: list[SeedFailure], skipped: list[int]) -> None:
        lines = [f"seed {f.seed} failed: {f.message}" for f in failures]
        if skipped:
            lines.append(f"seeds not run after a failure in their worker: {', '.join(map(str, skipped))}")
        super().__init__("; ".join(lines))
        self.failures, self.skipped = failures, skipped
        self.exit_code = 1 if any(f.exit_code == 1 for f in failures) else failures[0].exit_code


def split_seeds(seeds: list[int], workers: int) -> list[list[int]]:
    """Deal ``seeds`` round-robin to at most ``workers`` non-empty groups."""
    count = min(workers, len(seeds))
    return [seeds[i::count] for i in range(count)]


def worker_threads(workers: int, cores: int | None = None) -> int:
    """Torch threads per worker: the cores shared evenly, at least one."""
    return max(1, (cores or os.cpu_count() or 1) // workers)


def worker_gpu(index: int, device: str, gpus: int) -> str | None:
    """``CUDA_VISIBLE_DEVICES`` of worker ``index``: one GPU each when there are several, else ``None``."""
    if gpus > 1 and device in ("auto", "cuda"):
        return str(index % gpus)
    return None


def train_parallel(
    data_dir: Path, cfg: ExperimentConfig, workers: int, quiet: bool = False
) -> list[StudyResult]:
    """Run the seeds of ``cfg.protocol.seeds`` in ``workers`` processes; see the module docstring.

    Returns:
        One :class:`StudyResult` per seed, in the order of ``cfg.protocol.seeds``.

    Raises:
        ConfigError: ``workers < 1``.
        SeedsFailed: after every worker has ended, when any seed failed.
    """
    import torch

    from mscl.tracking.runs import ensure_experiment, use_tracking_uri

    if workers < 1:
        raise ConfigError(f"--parallel must be >= 1, got {workers}")
    uri = use_tracking_uri(cfg.tracking.uri, cfg.tracking.connect_timeout_s)
    ensure_experiment(cfg.tracking.experiment)
    cfg = cfg.model_copy(update={"tracking": cfg.tracking.model_copy(update={"uri": uri})})
    groups = split_seeds(cfg.protocol.seeds, workers)
    threads = worker_threads(len(groups))
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    console = Console(quiet=quiet, stderr=True)
    console.print(f"{len(groups)} workers, {threads} torch thread(s) each: seeds {groups}")
    outcomes: list[WorkerOutcome] = []
    context = get_context("spawn")
    pools = [
        ProcessPoolExecutor(1, context, _start_worker, (threads, worker_gpu(i, cfg.train.device, gpus)))
        for i in range(len(groups))
    ]
    try:
        futures = [
            pool.submit(_run_seeds, data_dir, cfg, group) for pool, group in zip(pools, groups, strict=True)
        ]
        outcomes = [_outcome(future, group) for future, group in zip(futures, groups, strict=True)]
    finally:
        for pool in pools:
            pool.shutdown(wait=True)
    failures = [o.failure for o in outcomes if o.failure is not None]
    if failures:
        raise SeedsFailed(failures, sorted(s for o in outcomes for s in o.skipped))
    by_seed = {result.seed: result for outcome in outcomes for result in outcome.results}
    results = [by_seed[seed] for seed in cfg.protocol.seeds]
    for result in results:
        Console(quiet=quiet).print(_summary(result))
    return results


def _summary(result: StudyResult) -> str:
    """One line per finished seed: its continual metrics."""
    return f"{result.strategy} seed {result.seed} {result.summary_line()}"


def _start_worker(threads: int, gpu: str | None) -> None:
    """Worker initializer: pin the GPU (before CUDA starts) and the torch thread count."""
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    import torch

    torch.set_num_threads(threads)


def _run_seeds(data_dir: Path, cfg: ExperimentConfig, seeds: list[int]) -> WorkerOutcome:
    """Train ``seeds`` one after the other in this worker; stop at the first failure."""
    from mscl.api import train_study

    outcome = WorkerOutcome()
    for position, seed in enumerate(seeds):
        single = cfg.model_copy(update={"protocol": cfg.protocol.model_copy(update={"seeds": [seed]})})
        try:
            outcome.results += train_study(data_dir, single, quiet=True)
        except MsclError as exc:
            outcome.failure = SeedFailure(seed, str(exc), exc.exit_code)
        except Exception as exc:
            outcome.failure = SeedFailure(seed, f"{type(exc).__name__}: {exc}", 1)
        if outcome.failure is not None:
            outcome.skipped = seeds[position + 1 :]
            break
    return outcome


def _outcome(future: Future[WorkerOutcome], seeds: list[int]) -> WorkerOutcome:
    """The worker's outcome; a worker that died is a failure of its seeds."""
    try:
        return future.result()
    except BrokenProcessPool:
        failure = SeedFailure(seeds[0], f"the worker process of seeds {seeds} died (out of memory?)", 1)
        return WorkerOutcome(failure=failure, skipped=seeds[1:])
