"""A third-party package extends mscl without touching it: one strategy, one metric, one memory backend.

The example plugin (``tests/plugin``) registers ``anchored_replay``, ``lesion_count_diff`` and ``npz``
through its own entry points; these tests use them through the CLI, run a tiny study with all three, and
run mscl's contract suites the way the plugin's repository would.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from mscl.cli.main import app
from mscl.memory_backends.registry import MEMORY_BACKENDS
from mscl.metrics.registry import METRICS
from mscl.strategies import STRATEGIES
from mscl.tracking.checkpoints import stage_runs
from mscl.tracking.rmatrix import load_r_matrix
from tests.plugin.install import PLUGIN_ROOT, install

TINY = ["--preset", "tiny", "--set", "model.channels=[2,4,8]", "--set", "train.patch_size=[8,8,8]"]
PLUGIN_NAMES = {"mscl.strategies": "anchored_replay", "mscl.metrics": "lesion_count_diff"}


@pytest.fixture(scope="module")
def plugin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, dict[str, str]]]:
    """The example plugin installed for this module only."""
    with pytest.MonkeyPatch.context() as patch:
        yield install(tmp_path_factory.mktemp("site"), patch)


def train(data: Path, folder: Path, *extra: str) -> str:
    """``mscl train`` with the plugin's strategy, metric and backend; returns the tracking URI."""
    folder.mkdir(parents=True, exist_ok=True)  # the tracking database's folder must exist
    uri = f"sqlite:///{folder}/mlflow.db"
    args = [
        "train", "--data", str(data), *TINY, "--strategy", "anchored_replay", "--memory-backend", "npz",
        "--memory-path", str(folder / "memory"), "--set", "eval.metrics=[dice,lesion_count_diff]",
        "--set", f"train.checkpoint_dir={folder / 'checkpoints'}", "--tracking-uri", uri, "--quiet", *extra,
    ]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return uri


def test_its_entries_are_found_by_name(plugin: dict[str, dict[str, str]]) -> None:
    assert set(plugin) == {"mscl.strategies", "mscl.metrics", "mscl.memory_backends"}
    assert (
        "anchored_replay" in STRATEGIES.names()
        and STRATEGIES.get("anchored_replay").name == "anchored_replay"
    )
    assert METRICS.get("lesion_count_diff").higher_is_better is False
    assert MEMORY_BACKENDS.get("npz").suffix == ".npzd"
    runner = CliRunner()
    assert "anchored_replay" in runner.invoke(app, ["train", "--help"]).output


def test_its_config_section_is_validated_and_shown(plugin: dict[str, dict[str, str]]) -> None:
    runner = CliRunner()
    shown = runner.invoke(
        app, ["config", "show", "--preset", "tiny", "--set", "strategy.name=anchored_replay"]
    )
    assert shown.exit_code == 0, shown.output
    assert "name: anchored_replay" in shown.output and "weight: 0.01" in shown.output
    typo = runner.invoke(
        app, ["config", "show", "--set", "strategy.name=anchored_replay", "--set", "strategy.weigth=1"]
    )
    assert typo.exit_code == 2 and "strategy: weigth: unknown key" in typo.stderr
    negative = runner.invoke(
        app, ["config", "show", "--set", "strategy.name=anchored_replay", "--set", "strategy.weight=-1"]
    )
    assert negative.exit_code == 2 and "strategy: weight: must be >= 0" in negative.stderr
    other = runner.invoke(
        app, ["config", "show", "--set", "strategy.name=finetune", "--set", "strategy.weight=1"]
    )
    assert other.exit_code == 2 and "strategy: weight: unknown key" in other.stderr  # not finetune's knob


def test_a_study_uses_its_strategy_metric_and_backend(
    plugin: dict[str, dict[str, str]], blob_dataset: Path, tmp_path: Path
) -> None:
    uri = train(blob_dataset, tmp_path / "anchored", "--set", "strategy.weight=0.5")
    client = MlflowClient(uri)
    [parent] = [r for r in client.search_runs(["1"]) if r.info.run_name == "anchored_replay-seed0"]
    assert parent.data.params["strategy.weight"] == "0.5"
    rmatrix = load_r_matrix(client, parent.info.run_id)
    assert list(rmatrix.metrics) == ["dice", "lesion_count_diff"]
    counts = rmatrix.metric("lesion_count_diff")
    assert not counts.higher_is_better and counts.bounds == (0.0, None)
    assert "bwt/lesion_count_diff" in parent.data.metrics
    stages = stage_runs(client, parent)
    sizes = [s.data.metrics["strategy/state_bytes"] for s in stages]
    assert sizes[0] > 0 and len(set(sizes)) == 1  # an anchor of every parameter, from stage 1 on
    assert all(f"test/lesion_count_diff/{c}" in s.data.metrics for s in stages for c in rmatrix.centers)
    [store] = (tmp_path / "anchored" / "memory").glob("*.npzd")
    manifest = client.download_artifacts(stages[-1].info.run_id, "memory_manifest.json", str(tmp_path))
    samples = json.loads(Path(manifest).read_text())["samples"]
    assert {s["center"] for s in samples} == set(rmatrix.centers)
    assert len(list(store.glob("*.npz"))) == len(samples)  # one file per sample kept
    inspect = CliRunner().invoke(app, ["memory", "inspect", str(store), "--backend", "npz", "--verify"])
    assert inspect.exit_code == 0, inspect.output
    plain = train(blob_dataset, tmp_path / "plain", "--set", "strategy.weight=0")

    def stage2_loss(tracking: str) -> list[float]:
        [run] = [r for r in MlflowClient(tracking).search_runs(["1"]) if r.info.run_name == "stage2-Mid"]
        return [m.value for m in MlflowClient(tracking).get_metric_history(run.info.run_id, "train/loss")]

    assert stage2_loss(uri) != stage2_loss(plain)  # the loss term reaches training


@pytest.mark.slow
def test_its_repository_runs_the_mscl_contract_suites(plugin: dict[str, dict[str, str]]) -> None:
    names = " or ".join([*PLUGIN_NAMES.values(), "npz"])
    command = [
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
        "-c", str(PLUGIN_ROOT / "pyproject.toml"), str(PLUGIN_ROOT / "test_plugin_contracts.py"), "-k", names,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and " failed" not in done.stdout
