"""``mscl report`` through the Typer app."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from mscl.cli.main import app
from mscl.tracking.rmatrix import MetricMatrix, RMatrix, log_r_matrix

runner = CliRunner()


@pytest.fixture(scope="module")
def uri(tmp_path_factory) -> str:
    """Two finished replay seeds and one unfinished run in experiment ``cli``, scored by Dice and volume."""
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root}/mlflow.db"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("cli", artifact_location=str(root / "art"))
    client.create_experiment("empty", artifact_location=str(root / "empty"))
    for seed, finish in ((0, True), (1, True), (2, False)):
        rm = RMatrix(
            strategy="replay",
            seed=seed,
            order=["B", "A"],
            centers=["A", "B"],
            metrics={
                "dice": MetricMatrix(matrix=[[0.2, 0.6], [0.5, 0.7]]),
                "volume_diff_ml": MetricMatrix(
                    higher_is_better=False, bounds=(0.0, None), matrix=[[8.0, 3.5], [4.0, 2.5]]
                ),
            },
        )
        tags = {"mscl.strategy": "replay", "mscl.order_kind": "random"}
        run_id = client.create_run(exp, run_name=f"replay-seed{seed}", tags=tags).info.run_id
        log_r_matrix(client, run_id, rm)
        if finish:
            client.set_terminated(run_id)
    return uri


def test_report_command_writes_the_report(uri, tmp_path) -> None:
    out = tmp_path / "rep"
    args = ["report", "--experiment", "cli", "--tracking-uri", uri, "--out", str(out), "--order", "random"]
    result = runner.invoke(app, [*args, "--strategies", "replay", "--no-log"])
    assert result.exit_code == 0, result.output
    assert "read 2 runs, skipped 1" in result.output
    assert "replay-seed2: unfinished (status RUNNING)" in result.output
    assert (out / "report.html").is_file() and (out / "bwt_per_center_random.csv").is_file()
    assert (out / "bwt_per_center_random_volume_diff_ml.csv").is_file()
    assert (out / "zero_shot_random_volume_diff_ml.png").is_file()
    assert "logged to MLflow" not in result.output


@pytest.mark.parametrize(
    ("experiment", "extra", "message"),
    [
        ("empty", [], "error: experiment 'empty' has no finished runs to report on"),
        ("absent", [], "error: unknown MLflow experiment 'absent'"),
        ("cli", ["--order", "sideways"], "error: --order must be one of descending, random, all"),
        (
            "cli",
            ["--strategies", "bogus"],
            "error: experiment 'cli' has no runs of --strategies bogus; its runs are of: replay",
        ),
    ],
)
def test_user_errors_exit_2_with_one_line(uri, tmp_path, experiment, extra, message) -> None:
    result = runner.invoke(
        app, ["report", "--experiment", experiment, "--tracking-uri", uri, "--out", str(tmp_path), *extra]
    )
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_out_creates_only_its_last_folder(uri, tmp_path) -> None:
    args = ["report", "--experiment", "cli", "--tracking-uri", uri, "--no-log"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "no" / "x" / "y")])
    assert result.exit_code == 2
    assert (
        result.stderr.strip()
        == f"error: {tmp_path / 'no' / 'x'}: folder does not exist; create it or choose another --out"
    )
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "file").write_text("")
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "file")])
    assert result.exit_code == 2
    assert "exists and is not a folder" in result.stderr
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "new")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "new" / "report.html").is_file()
