"""Mid-stage resume points: a sha256 in every file, owner-only modes, nothing left behind."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch

from mscl.engine.trainer import StageState
from mscl.errors import ResumePointCorrupted
from mscl.protocol.checkpoints import MAGIC, StateStore


def saved(tmp_path: Path) -> StateStore:
    store = StateStore(tmp_path / "checkpoints" / "0123abcd")
    model = torch.nn.Linear(3, 2)
    store.save(1, model, StageState({"state": {}}, {"last_epoch": 4}, 5), {"ewc": {"w": torch.ones(2)}})
    return store


def test_a_resume_point_round_trips_with_its_sha256(tmp_path: Path) -> None:
    store = saved(tmp_path)
    assert store.path(1).read_bytes().startswith(MAGIC)
    point = store.load(1)
    assert point is not None and point.index == 1 and point.state.epoch == 5
    assert torch.equal(point.strategy_state["ewc"]["w"], torch.ones(2))
    assert store.load(0) is None


@pytest.mark.parametrize("at", [0.5, 0.9])
def test_a_flipped_byte_or_a_truncation_is_refused(tmp_path: Path, at: float) -> None:
    store = saved(tmp_path)
    data = store.path(1).read_bytes()
    position = int(len(data) * at)
    store.path(1).write_bytes(data[:position] + bytes([data[position] ^ 1]) + data[position + 1 :])
    with pytest.raises(ResumePointCorrupted, match=r"does not match its sha256 .* restart stage 2"):
        store.load(1)
    store.path(1).write_bytes(data[: len(data) // 3])
    with pytest.raises(ResumePointCorrupted, match="does not match its sha256"):
        store.load(1)


def test_a_resume_point_written_before_the_sha256_is_still_read(tmp_path: Path) -> None:
    """Such a file never had a hash: it is read as it is (and must still unpickle safely)."""
    store = StateStore(tmp_path / "abc")
    store.folder.mkdir()
    buffer = io.BytesIO()
    torch.save({"model": {}, "optimizer": {}, "scheduler": {}, "epoch": 2}, buffer)
    store.path(0).write_bytes(buffer.getvalue())
    point = store.load(0)
    assert point is not None and point.state.epoch == 2
    store.path(0).write_bytes(b"garbage")
    with pytest.raises(ResumePointCorrupted, match="cannot be read"):
        store.load(0)


def test_files_are_owner_only_whatever_the_umask(tmp_path: Path, umask_000: None) -> None:
    store = saved(tmp_path)
    assert store.path(1).stat().st_mode & 0o777 == 0o600
    assert store.folder.stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "checkpoints").stat().st_mode & 0o777 == 0o700


def test_clear_removes_the_file_a_killed_save_left_and_the_empty_folder(tmp_path: Path) -> None:
    store = saved(tmp_path)
    (store.folder / ".stage2.pt.tmp-1234abcd").write_bytes(b"half")
    store.clear(1)
    assert not store.folder.exists()


def test_a_run_id_is_never_a_path() -> None:
    with pytest.raises(ResumePointCorrupted, match="bad run id"):
        StateStore(Path("checkpoints") / "..")
