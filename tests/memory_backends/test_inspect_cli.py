"""``mscl memory inspect``: tables per center, --verify and its exit code, backend detection."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from mscl.cli.main import app
from mscl.memory_backends.registry import open_backend

from .conftest import meta, sample

runner = CliRunner(env={"COLUMNS": "200"})  # wide enough that rich does not wrap cells


@pytest.fixture(params=["hdf5", "zarr"])
def memory(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """A store with two centers, uncompressed so a test can corrupt it."""
    path = tmp_path / ("memory.h5" if request.param == "hdf5" else "memory.zarr")
    with open_backend(request.param, path, compression=False) as store:
        store.put("bwh-1", *sample(1), meta("BWH", "sub-1", "random 1/20 (seed 0)"))
        store.put("bwh-2", *sample(2), meta("BWH", "sub-2", "random 2/20 (seed 0)"))
        store.put("amu-1", *sample(3), meta("AMU", "sub-9", "whole center 1/1"))
    return path


def test_inspect_prints_a_table_per_center(memory: Path) -> None:
    result = runner.invoke(app, ["memory", "inspect", str(memory)])
    assert result.exit_code == 0, result.output
    assert "3 samples in 2 centers" in result.output
    assert "AMU: 1 case, 1 subject," in result.output and "BWH: 2 cases, 2 subjects," in result.output
    assert "random 2/20 (seed 0)" in result.output and "whole center 1/1" in result.output


def test_verify_passes_on_an_intact_store(memory: Path) -> None:
    result = runner.invoke(app, ["memory", "inspect", str(memory), "--verify"])
    assert result.exit_code == 0, result.output
    assert "all checksums ok" in result.output


def test_verify_exits_1_listing_corrupt_keys(memory: Path) -> None:
    payload = sample(2)[0].tobytes()
    target = (
        memory
        if memory.is_file()
        else next(p for p in memory.rglob("*") if p.is_file() and payload in p.read_bytes())
    )
    data = bytearray(target.read_bytes())
    data[data.find(payload) + 7] ^= 0x55
    target.write_bytes(bytes(data))
    result = runner.invoke(app, ["memory", "inspect", str(memory), "--verify"])
    assert result.exit_code == 1
    assert "corrupt samples: bwh-2" in result.output and "CORRUPT" in result.output


def test_explicit_backend_and_unknown_paths(memory: Path, tmp_path: Path) -> None:
    name = "hdf5" if memory.suffix == ".h5" else "zarr"
    assert runner.invoke(app, ["memory", "inspect", str(memory), "--backend", name]).exit_code == 0
    result = runner.invoke(app, ["memory", "inspect", str(tmp_path / "nothing.zarr")])
    assert result.exit_code == 2 and "no replay memory there" in result.output
    result = runner.invoke(app, ["memory", "inspect", str(memory), "--backend", "nope"])
    assert result.exit_code == 2 and "unknown memory backend 'nope'; known: hdf5" in result.output
