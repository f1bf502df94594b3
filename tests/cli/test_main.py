"""The CLI shell: help, version, config commands, the error boundary."""

from pathlib import Path

from typer.testing import CliRunner

from mscl import __version__
from mscl.cli.main import app

runner = CliRunner()


def test_help_lists_the_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("prepare", "config"):
        assert command in result.output


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output


def test_config_show_prints_the_resolved_yaml() -> None:
    result = runner.invoke(app, ["config", "show", "--preset", "paper", "--set", "train.epochs=3"])
    assert result.exit_code == 0, result.output
    assert "preset: paper" in result.output
    assert "epochs: 3" in result.output


def test_config_validate_lists_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  epochs: 0\n  lr: -1\n")
    result = runner.invoke(app, ["config", "validate", str(path)])
    assert result.exit_code == 2
    assert f"{path}: train.epochs: must be >= 1" in result.stderr
    assert f"{path}: train.lr: must be > 0" in result.stderr


def test_config_validate_accepts_a_good_file(tmp_path: Path) -> None:
    path = tmp_path / "good.yaml"
    path.write_text("preset: tiny\ntrain:\n  epochs: 3\n")
    result = runner.invoke(app, ["config", "validate", str(path)])
    assert result.exit_code == 0
    assert "valid" in result.output


def test_user_errors_are_one_line_with_exit_code_2() -> None:
    result = runner.invoke(app, ["config", "show", "--preset", "huge"])
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: unknown preset 'huge'; choose one of: tiny, quick, paper"
    assert "Traceback" not in result.output
