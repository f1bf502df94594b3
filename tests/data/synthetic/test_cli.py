"""``mscl prepare --synthetic`` through the CLI: bad options fail with one line and write nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from mscl.cli.main import app

runner = CliRunner()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--preset", "huge"], "unknown preset 'huge'"),
        (["--preset", "tiny", "--seed", "-1"], "synthetic.seed: must be >= 0"),
    ],
)
def test_bad_options_exit_2_with_one_line(tmp_path: Path, extra: list[str], message: str) -> None:
    out = tmp_path / "ds"
    result = runner.invoke(app, ["prepare", "--synthetic", "--out", str(out), "-q", *extra])
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_existing_output_needs_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = runner.invoke(app, ["prepare", "--synthetic", "--preset", "tiny", "--out", str(out), "-q"])
    assert result.exit_code == 2
    assert "--overwrite" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
