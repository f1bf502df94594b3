"""Prepare a dataset directory from real data: a BIDS tree or a CSV manifest."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from mscl.config import DataConfig
from mscl.data.build import CaseJob, build_dataset
from mscl.data.manifest import DatasetManifest, SourceRecord
from mscl.data.preprocess import preprocess_case
from mscl.data.sources import discover
from mscl.data.standardize import preprocessing_record
from mscl.data.writer import check_output


def prepare_real(
    kind: Literal["bids", "manifest"],
    path: Path,
    out: Path,
    data: DataConfig,
    overwrite: bool = False,
    quiet: bool = False,
) -> DatasetManifest:
    """Discover, check, preprocess and split real cases, then write ``out`` atomically.

    Args:
        kind: ``"bids"`` for a BIDS root, ``"manifest"`` for a CSV manifest.
        path: The BIDS root or the CSV file.
        out: Dataset directory to write (written to a temporary sibling, renamed at the end).
        data: Preprocessing, split, store format and worker settings.
        overwrite: Replace an existing ``out``.
        quiet: No progress bar.

    Returns:
        The manifest written to ``out/dataset.json``.

    Raises:
        DataError: with one line naming the file or field at fault; ``out`` is then left untouched.
    """
    out = Path(out)
    check_output(out, overwrite)
    jobs = [
        CaseJob(case.subject, case.center, case.contrast, preprocess_case, {"source": case, "data": data})
        for case in discover(kind, path, data)
    ]
    return build_dataset(
        jobs,
        out=out,
        name=out.name,
        fmt=data.format,
        source=SourceRecord(kind=kind, path=str(Path(path).resolve())),
        preprocessing=preprocessing_record(data),
        test_fraction=data.test_fraction,
        split_seed=data.split_seed,
        workers=data.workers,
        overwrite=overwrite,
        quiet=quiet,
    )
