"""Cells as Ray tasks: a local Ray instance sized to the machine, or an existing cluster.

Ray is an optional extra (``pip install 'mscl[ray]'``) imported only here, only by ``mscl study`` and
``mscl train --parallel``. Each cell is one task asking for ``cpus_per_study`` CPUs and ``gpus_per_study``
GPUs; Ray retries a task whose worker died (``max_retries``), never one that raised.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from mscl.errors import ConfigError
from mscl.study.cell import CellOutcome, CellRequest, run_cell
from mscl.study.grid import StudySettings

RAY_EXTRA = "pip install 'mscl[ray]'"
CANCEL_GRACE_S = 60.0
"""Seconds cancelled tasks get to end their runs as KILLED before their workers are killed."""
LOCAL_WORKER_NICENESS = 0
"""The niceness of a local instance's workers. Ray's default, 15, suits background work on a shared node;
a local study is the work its user started, and at 15 it got 6 % of a CPU beside one `mscl train`."""


def import_ray() -> ModuleType:
    """The ``ray`` module, or a one-line error naming the extra that installs it."""
    try:
        import ray
    except ImportError:
        raise ConfigError(f"mscl study runs its grid on Ray, which is not installed: {RAY_EXTRA}") from None
    return ray


@dataclass(frozen=True)
class Resources:
    """What each cell asks for, and how many cells run at once on a local instance (``None``: a cluster)."""

    cpus_per_study: int
    gpus_per_study: float
    workers: int | None


def local_resources(settings: StudySettings, cores: int, gpus: int) -> Resources:
    """Size a local instance: one study per GPU (or per ``gpus_per_study`` share), else one study with
    every core; the cores are split between the studies that run at once."""
    gpus_per_study = settings.gpus_per_study if settings.gpus_per_study is not None else float(gpus > 0)
    if gpus_per_study > 0 and gpus == 0:
        raise ConfigError(f"--gpus-per-study {gpus_per_study:g}: this machine has no GPU")
    if settings.workers is not None:
        workers = settings.workers
    elif gpus_per_study > 0:
        workers = max(1, int(gpus / gpus_per_study))
    else:
        workers = 1
    cpus = settings.cpus_per_study or max(1, cores // workers)
    return Resources(cpus, gpus_per_study, workers)


def cluster_resources(settings: StudySettings, available: dict[str, float]) -> Resources:
    """What a cell asks of a cluster: one GPU when the cluster has GPUs, one CPU, unless set."""
    gpus = settings.gpus_per_study
    if gpus is None:
        gpus = 1.0 if available.get("GPU", 0) > 0 else 0.0
    return Resources(settings.cpus_per_study or 1, gpus, None)


@contextmanager
def ray_instance(settings: StudySettings) -> Iterator[tuple[ModuleType, Resources]]:
    """Connect to ``settings.address`` or start a local instance (shut down afterwards, its workers at
    :data:`LOCAL_WORKER_NICENESS`); a Ray already initialised in this process (a notebook, tests) is used as
    it is and left running."""
    ray = import_ray()
    started = not ray.is_initialized()
    try:
        if settings.address is not None:
            if started:
                ray.init(address=settings.address, logging_level="warning", log_to_driver=False)
            yield ray, cluster_resources(settings, ray.cluster_resources())
            return
        cores = os.cpu_count() or 1
        resources = local_resources(settings, cores, _local_gpus())
        if started:
            ray.init(
                num_cpus=resources.cpus_per_study * (resources.workers or 1),
                num_gpus=_local_gpus(),
                include_dashboard=False,
                logging_level="warning",
                log_to_driver=False,
                _system_config={"worker_niceness": LOCAL_WORKER_NICENESS},
            )
        yield ray, resources
    finally:
        if started and ray.is_initialized():
            ray.shutdown()


def _local_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _cell_task(request: CellRequest) -> CellOutcome:
    """The body of a Ray task (module level, so Ray can pickle it by reference)."""
    return run_cell(request)


def run_tasks(
    ray: ModuleType,
    resources: Resources,
    requests: Sequence[CellRequest],
    max_retries: int,
    on_outcome: Callable[[CellOutcome], None],
) -> list[CellOutcome]:
    """Run every request as a task and call ``on_outcome`` as each ends; a task that kept dying or was
    cancelled is a failed outcome.

    Raises:
        KeyboardInterrupt: after cancelling every task that had not ended (see :func:`cancel`).
    """
    remote = ray.remote(_cell_task).options(
        num_cpus=resources.cpus_per_study,
        num_gpus=resources.gpus_per_study,
        max_retries=max_retries,
        retry_exceptions=False,
    )
    pending: dict[Any, CellRequest] = {remote.remote(request): request for request in requests}
    outcomes = []
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            for ref in done:
                outcome = _outcome(ray, ref, pending.pop(ref))
                outcomes.append(outcome)
                on_outcome(outcome)
    except KeyboardInterrupt:
        cancel(ray, list(pending))
        raise
    return outcomes


def _outcome(ray: ModuleType, ref: Any, request: CellRequest) -> CellOutcome:
    try:
        return ray.get(ref)  # type: ignore[no-any-return]
    except ray.exceptions.RayError as exc:  # the worker kept dying, the task was cancelled, a node was lost
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return CellOutcome(request.cell, None, 0.0, error=f"{type(exc).__name__}: {message}", exit_code=1)


def cancel(ray: ModuleType, refs: list[Any], grace_s: float = CANCEL_GRACE_S) -> None:
    """Cancel ``refs``: each running task gets a KeyboardInterrupt (it ends its runs as KILLED), and the
    workers of those still running after ``grace_s`` are killed."""
    for ref in refs:
        ray.cancel(ref, force=False)
    deadline = time.monotonic() + grace_s
    remaining = refs
    while remaining and time.monotonic() < deadline:
        _, remaining = ray.wait(remaining, num_returns=len(remaining), timeout=1.0)
    for ref in remaining:
        ray.cancel(ref, force=True)
