"""Build a dataset directory from case jobs: parallel processing, subject splits, atomic write.

Real data (BIDS / CSV) and the synthetic generator both describe their cases as :class:`CaseJob`
objects and hand them to :func:`build_dataset`, so every dataset directory is written the same way.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mscl.data.manifest import (
    CenterRecord,
    DatasetManifest,
    PreprocessingRecord,
    SourceRecord,
    SplitRecord,
)
from mscl.data.split import SPLIT_RULE, assign_splits
from mscl.data.store import StoreFormat
from mscl.data.writer import DatasetWriter, PreparedCase
from mscl.progress import ProgressDisplay


@dataclass(frozen=True)
class CaseJob:
    """One (subject, contrast) pair to produce: identity known up front, arrays made by ``make``.

    ``make(**kwargs)`` must be a picklable top-level function returning a :class:`PreparedCase`.
    """

    subject: str
    center: str
    contrast: str
    make: Callable[..., PreparedCase]
    kwargs: dict[str, Any]

    def run(self) -> PreparedCase:
        """Produce the case."""
        return self.make(**self.kwargs)


def _run_job(job: CaseJob) -> PreparedCase:
    import torch

    torch.set_num_threads(1)
    return job.run()


def _results(jobs: Sequence[CaseJob], workers: int) -> Iterator[PreparedCase]:
    """Yield prepared cases in job order, computed by ``workers`` processes.

    Every case is computed with one torch thread, in a worker or in this process: torch's reductions
    (the normalisation statistics) round differently with more threads, and the bytes of a case must not
    depend on ``workers``.
    """
    if workers <= 1 or len(jobs) <= 1:
        import torch

        threads = torch.get_num_threads()
        try:
            yield from (_run_job(job) for job in jobs)
        finally:
            torch.set_num_threads(threads)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(_run_job, jobs)


def build_dataset(
    jobs: Sequence[CaseJob],
    *,
    out: Path,
    name: str,
    fmt: StoreFormat,
    source: SourceRecord,
    preprocessing: PreprocessingRecord,
    test_fraction: float,
    split_seed: int,
    workers: int = 1,
    overwrite: bool = False,
    quiet: bool = False,
) -> DatasetManifest:
    """Process ``jobs``, split subjects per center, and write the dataset directory atomically.

    Raises:
        DataError: for an empty source, an unsplittable center, bad arrays, or an unwritable output.
    """
    from mscl.errors import DataError

    if not jobs:
        raise DataError(f"{source.path or source.kind}: no cases found")
    subjects: dict[str, set[str]] = defaultdict(set)
    for job in jobs:
        subjects[job.center].add(job.subject)
    splits = assign_splits(subjects, test_fraction, split_seed)
    with DatasetWriter(out, fmt=fmt, overwrite=overwrite) as writer:
        with ProgressDisplay(quiet, transient=True) as progress:
            task = progress.add_task(f"prepare {Path(out).name}", total=len(jobs), unit="case")
            for job, case in zip(jobs, _results(jobs, workers), strict=True):
                writer.add(case, splits[job.subject])
                progress.advance(task)
        manifest = DatasetManifest(
            name=name,
            store=fmt,
            source=source,
            preprocessing=preprocessing,
            split=SplitRecord(test_fraction=test_fraction, seed=split_seed, rule=SPLIT_RULE),
            centers=_centers(jobs),
            cases=writer.records,
        )
        writer.commit(manifest)
    return manifest


def _centers(jobs: Sequence[CaseJob]) -> list[CenterRecord]:
    contrasts: dict[str, list[str]] = defaultdict(list)
    subjects: dict[str, set[str]] = defaultdict(set)
    for job in jobs:
        if job.contrast not in contrasts[job.center]:
            contrasts[job.center].append(job.contrast)
        subjects[job.center].add(job.subject)
    return [
        CenterRecord(name=center, contrasts=contrasts[center], subjects=len(subjects[center]))
        for center in contrasts
    ]
