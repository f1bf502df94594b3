"""Commands about runs that already exist (resume, evaluate, audit, extend, study --resume, predict): given a
run id in a folder with no tracking database, they say so in one line, exit 2 and create nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from mscl.cli.main import app

RUN = "0" * 32


@pytest.mark.parametrize(
    "args",
    [
        ["train", "--resume", RUN, "--data", "{data}"],
        ["evaluate", "--run-id", RUN, "--data", "{data}"],
        ["audit", RUN],
        ["extend", RUN, "--data", "{data}"],
        ["study", "--resume", RUN],
        ["predict", "--model", f"runs:/{RUN}", "--input", "{data}", "--out", "{tmp}/out"],
    ],
    ids=lambda args: " ".join(args[:2]),
)
def test_a_run_id_without_a_store_creates_nothing(
    args: list[str], blob_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    filled = [a.format(data=blob_dataset, tmp=tmp_path) for a in args]
    result = CliRunner().invoke(app, filled)
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == (
        f"error: {tmp_path / 'mlflow.db'}: no tracking database there; pass the study's --tracking-uri"
    )
    assert list(tmp_path.iterdir()) == []
