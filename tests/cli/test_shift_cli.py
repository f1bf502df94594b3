"""``mscl shift`` and the shift check of ``mscl prepare``: tables, JSON, flags, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from mscl.cli.main import app

runner = CliRunner()
TITLE = ": domain shift"


def test_shift_prints_the_matrix_and_writes_json(blob_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "shift.json"
    result = runner.invoke(app, ["shift", "--data", str(blob_dataset), "--json", str(out), "-q"])
    assert result.exit_code == 0, result.output
    assert TITLE in result.stdout and "shift per domain" in result.stdout
    assert f"shift matrix written to {out}" in result.stdout
    payload = json.loads(out.read_text())
    assert payload["domains"] == ["Big", "Mid", "Small"]
    assert "lookup-table" in payload["proxy"]
    dice = payload["dice"]
    assert len(dice) == 3 and all(len(row) == 3 for row in dice)
    assert dice[2][2] > 0.8 and dice[0][2] < 0.2  # Small's lesions are dark: Big's bright model misses them
    for row, line in zip(dice, result.stdout.splitlines()[3:6], strict=True):
        assert line.split()[1:] == [f"{value:.2f}" for value in row]
    assert [p.name for p in tmp_path.iterdir()] == ["shift.json"]  # no temporary file left


def test_shift_of_a_missing_directory_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["shift", "--data", str(tmp_path / "absent")])
    assert result.exit_code == 2
    assert "dataset directory not found" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_shift_of_a_corrupt_manifest_is_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "dataset.json").write_text("{}")
    result = runner.invoke(app, ["shift", "--data", str(tmp_path)])
    assert result.exit_code == 2 and "invalid manifest" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_prepare_synthetic_prints_the_shift_check_unless_told_not_to(tmp_path: Path) -> None:
    base = ["prepare", "--synthetic", "--preset", "tiny", "-j", "1"]
    shown = runner.invoke(app, [*base, "--out", str(tmp_path / "a")])
    assert shown.exit_code == 0, shown.output
    assert TITLE in shown.stdout and "Karo FLAIR" in shown.stdout and "Milan" in shown.stdout
    hidden = runner.invoke(app, [*base, "--out", str(tmp_path / "b"), "--no-shift-check"])
    assert hidden.exit_code == 0, hidden.output
    assert "dataset written to" in hidden.stdout and TITLE not in hidden.stdout


def test_prepare_real_data_shows_the_check_only_when_asked(tmp_path: Path, raw: Path) -> None:
    base = ["prepare", "--manifest", str(raw / "cases.csv"), "--spacing", "1"]
    plain = runner.invoke(app, [*base, "--out", str(tmp_path / "a")])
    assert plain.exit_code == 0, plain.output
    assert TITLE not in plain.stdout
    asked = runner.invoke(app, [*base, "--out", str(tmp_path / "b"), "--shift-check"])
    assert asked.exit_code == 0, asked.output
    assert TITLE in asked.stdout
