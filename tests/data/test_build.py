"""build_dataset: a case's bytes do not depend on how many workers compute it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mscl.data.build import CaseJob, build_dataset
from mscl.data.dataset import PreparedDataset
from mscl.data.manifest import PreprocessingRecord, SourceRecord
from mscl.data.writer import PreparedCase
from tests.data.volumes import tiny_case


def threads_case(subject: str, center: str) -> PreparedCase:
    """A tiny case whose image holds the torch thread count it was computed with."""
    case = tiny_case(subject, center)
    return PreparedCase(
        subject, center, "FLAIR", np.full_like(case.image, torch.get_num_threads()), case.label, case.spacing
    )


@pytest.fixture
def two_threads() -> object:
    """This process runs torch with 2 threads during the test, as a 2-core machine does by default."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("workers", [1, 2])
def test_every_case_is_computed_with_one_torch_thread(
    tmp_path: Path, workers: int, two_threads: object
) -> None:
    jobs = [
        CaseJob(f"s{i}", "A", "FLAIR", threads_case, {"subject": f"s{i}", "center": "A"}) for i in range(3)
    ]
    out = tmp_path / "data"
    build_dataset(
        jobs,
        out=out,
        name="threads",
        fmt="zarr",
        source=SourceRecord(kind="synthetic", generator="tests"),
        preprocessing=PreprocessingRecord(spacing=(1, 1, 1), crop="none", intensity_normalization="none"),
        test_fraction=0.34,
        split_seed=0,
        workers=workers,
        quiet=True,
    )
    with PreparedDataset(out) as dataset:
        assert {float(dataset.load(case.id)[0].max()) for case in dataset.manifest.cases} == {1.0}
    assert torch.get_num_threads() == 2  # the caller's thread count is restored
