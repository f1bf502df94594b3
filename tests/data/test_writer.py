"""Atomic dataset writing: nothing is left behind by a failure; existing directories need --overwrite."""

from __future__ import annotations

from pathlib import Path

import pytest

from mscl.data.build import CaseJob
from mscl.data.manifest import DatasetManifest
from mscl.data.writer import DatasetWriter, check_output
from mscl.errors import DataError

from .volumes import build_tiny, tiny_case, tiny_jobs


def test_exception_mid_way_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    with pytest.raises(RuntimeError, match="interrupted"), DatasetWriter(out) as writer:
        writer.add(tiny_case("a1", "A"), "train")
        assert writer.tmp.is_dir()
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_worker_failure_during_build_leaves_nothing(tmp_path: Path) -> None:
    jobs = tiny_jobs({"A": 3})
    jobs[1] = CaseJob("A1", "A", "FLAIR", _fail, {})
    with pytest.raises(DataError, match="boom"):
        build_tiny(tmp_path / "ds", jobs=jobs)
    assert list(tmp_path.iterdir()) == []


def _fail(**_: object) -> None:
    raise DataError("boom")


def test_commit_writes_manifest_and_overwrite_replaces(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    first = build_tiny(out)
    assert DatasetManifest.read(out) == first
    with pytest.raises(DataError, match="exists; pass --overwrite"):
        DatasetWriter(out)
    with DatasetWriter(out, overwrite=True) as writer:
        writer.add(tiny_case("a1", "A"), "train")
        writer.commit(first.model_copy(update={"cases": writer.records, "name": "second"}))
    assert DatasetManifest.read(out).name == "second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_check_output_refuses_unusable_targets(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("")
    with pytest.raises(DataError, match="output folder does not exist"):
        check_output(afile / "ds", overwrite=False)
    with pytest.raises(DataError, match="exists and is not a directory"):
        check_output(afile, overwrite=True)
    check_output(tmp_path / "new", overwrite=False)
