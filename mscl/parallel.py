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
- Everything a user can get wrong (device, folders, every case readable) is checked in the parent, before
  any worker starts or any run exists (:func:`mscl.protocol.preflight.check_study`).
- Ctrl-C or SIGTERM to the parent stops every worker: each gets SIGTERM, ends its runs as KILLED and
  returns; a worker still alive after :data:`STOP_GRACE_S` is killed, and the runs it left RUNNING are
  ended as KILLED by the parent. Workers ignore Ctrl-C themselves (the terminal sends it to the whole
  process group: the parent decides) and get SIGTERM when the parent dies, even by SIGKILL (Linux).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

from rich.console import Console

from mscl.config import ExperimentConfig
from mscl.errors import ConfigError, MsclError, StudyInterrupted
from mscl.interrupts import deferred_interrupts, sigterm_as_interrupt
from mscl.protocol.results import StudyResult

STOP_GRACE_S = 60.0
"""Seconds a signalled worker may take to end its runs as KILLED before it is killed."""


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
    data_dir: Path, cfg: ExperimentConfig, workers: int, quiet: bool = False, verify_data: bool = False
) -> list[StudyResult]:
    """Run the seeds of ``cfg.protocol.seeds`` in ``workers`` processes; see the module docstring.

    Returns:
        One :class:`StudyResult` per seed, in the order of ``cfg.protocol.seeds``.

    Raises:
        ConfigError: ``workers < 1``.
        SeedsFailed: after every worker has ended, when any seed failed.
        StudyInterrupted: Ctrl-C or SIGTERM, once every worker has stopped and its runs are KILLED.
    """
    from mscl.data.dataset import PreparedDataset
    from mscl.permissions import owner_writes
    from mscl.protocol.preflight import check_study
    from mscl.tracking.runs import ensure_experiment, use_tracking_uri

    if workers < 1:
        raise ConfigError(f"--parallel must be >= 1, got {workers}")
    with owner_writes():
        uri = use_tracking_uri(cfg.tracking.uri, cfg.tracking.connect_timeout_s, cfg.tracking.retry_budget_s)
        with PreparedDataset(data_dir) as dataset:
            check_study(dataset, cfg, verify=verify_data)
        experiment_id = ensure_experiment(cfg.tracking.experiment)
        cfg = cfg.model_copy(update={"tracking": cfg.tracking.model_copy(update={"uri": uri})})
        return _train_parallel(data_dir, cfg, workers, quiet, experiment_id)


def _train_parallel(
    data_dir: Path, cfg: ExperimentConfig, workers: int, quiet: bool, experiment_id: str
) -> list[StudyResult]:
    import torch

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
    started_ms = int(time.time() * 1000)
    try:
        with sigterm_as_interrupt():
            futures = [
                pool.submit(_run_seeds, data_dir, cfg, group)
                for pool, group in zip(pools, groups, strict=True)
            ]
            outcomes = [_outcome(future, group) for future, group in zip(futures, groups, strict=True)]
    except KeyboardInterrupt:
        with deferred_interrupts():  # a second Ctrl-C must not cut the stopping short
            _stop_workers(pools)
            runs = _end_orphan_runs(cfg, experiment_id, started_ms)
        resume = "; ".join(f"seed {s}: `mscl train --resume {run} --data {data_dir}`" for s, run in runs)
        raise StudyInterrupted(
            f"interrupted: every worker stopped and its runs ended as KILLED; continue them with {resume}"
            if runs
            else "interrupted: every worker stopped before any run was created"
        ) from None
    finally:
        for pool in pools:
            pool.shutdown(wait=True, cancel_futures=True)
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


def _stop_workers(pools: list[ProcessPoolExecutor], grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM every worker process, wait up to ``grace_s`` for them to end their runs, SIGKILL the rest."""
    processes = [p for pool in pools for p in list(getattr(pool, "_processes", {}).values())]
    for process in processes:
        if process.is_alive() and process.pid is not None:
            os.kill(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join(5.0)


def _end_orphan_runs(cfg: ExperimentConfig, experiment_id: str, since_ms: int) -> list[tuple[int, str]]:
    """End as KILLED the runs of this command's seeds that a killed worker left RUNNING; returns
    ``(seed, parent run id)`` of every parent run this command created, for resuming."""
    from mlflow.tracking import MlflowClient

    from mscl.tracking import tree
    from mscl.tracking.queries import is_parent

    client = MlflowClient(cfg.tracking.uri)
    query = f"attributes.start_time >= {since_ms} and tags.`{tree.STRATEGY_TAG}` = '{cfg.strategy.name}'"
    seeds = {str(seed) for seed in cfg.protocol.seeds}
    found = client.search_runs([experiment_id], query, max_results=1000)
    parents = [run for run in found if is_parent(run) and run.data.tags.get(tree.SEED_TAG) in seeds]
    for parent in parents:
        children = client.search_runs(
            [experiment_id], f"tags.`{tree.PARENT_TAG}` = '{parent.info.run_id}'", max_results=1000
        )
        for run in [*children, parent]:
            if run.info.status == "RUNNING":
                client.set_terminated(run.info.run_id, "KILLED")
    unfinished = [run for run in parents if run.info.status != "FINISHED"]
    return sorted((int(run.data.tags[tree.SEED_TAG]), run.info.run_id) for run in unfinished)


def _start_worker(threads: int, gpu: str | None) -> None:
    """Worker initializer: ignore Ctrl-C (the parent stops the workers), die with the parent (Linux), pin
    the GPU (before CUDA starts) and the torch thread count."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGTERM)
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
