"""``build_report`` end to end against an sqlite tracking store."""

from __future__ import annotations

import csv
import re

import pytest
from mlflow.entities import RunTag
from PIL import Image
from report_cases import CANONICAL, DESCENDING, TABLE1, rmatrix, table1_runs

from mscl.errors import MsclError, TrackingError
from mscl.metrics.volume import AbsoluteVolumeDifference
from mscl.reports.api import build_report
from mscl.tracking.queries import read_parent_runs

SINGLE = rmatrix("single", 0, DESCENDING, CANONICAL, [[0.4] * 8 for _ in DESCENDING], kind="single")
JOINT = rmatrix("joint", 0, ["joint"], CANONICAL, [[0.5] * 8], kind="joint")
SUFFIXED = [
    "bwt_per_center_descending_volume_diff_ml.csv",
    "bwt_per_center_descending_volume_diff_ml.tex",
    "summary_descending_volume_diff_ml.csv",
    "tests_descending_volume_diff_ml.csv",
    "references_volume_diff_ml.csv",
    "zero_shot_descending_volume_diff_ml.csv",
    "zero_shot_descending_volume_diff_ml.png",
    "per_order_descending_volume_diff_ml.png",
    "bwt_bars_descending_volume_diff_ml.png",
    "heatmap_finetune_descending_volume_diff_ml.png",
    "heatmap_replay_descending_volume_diff_ml.png",
]


def csv_rows(path) -> dict[str, dict[str, str]]:
    """A table's CSV rows by their first cell."""
    with open(path) as f:
        return {row[next(iter(row))]: row for row in csv.DictReader(f)}


@pytest.fixture(scope="module")
def logged(store):
    name, exp = store.experiment()
    for strategy in ("finetune", "replay"):
        for rm in table1_runs(strategy):
            store.log(exp, rm, metrics={"wall_time_s": 100.0 * (1 + rm.seed), "gpu_hours": 0.5})
    store.log(exp, SINGLE)
    store.log(exp, JOINT)
    store.log(exp, table1_runs("replay")[0].model_copy(update={"seed": 99}), finish=False)
    missing = store.client.create_run(exp, run_name="missing-seed1", tags={"mscl.strategy": "replay"})
    store.client.set_terminated(missing.info.run_id)
    broken = store.client.create_run(exp, run_name="broken-seed2", tags={"mscl.strategy": "replay"})
    store.client.log_text(broken.info.run_id, '{"strategy": "replay"}', "r_matrix.json")
    store.client.set_terminated(broken.info.run_id)
    nested = store.client.create_run(exp, run_name="stage1-BWH", tags={"mscl.strategy": "replay"})
    store.client.log_batch(nested.info.run_id, tags=[RunTag("mlflow.parentRunId", missing.info.run_id)])
    return name


@pytest.fixture(scope="module")
def report(store, logged, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    return build_report(logged, out, tracking_uri=store.uri)


def test_report_files(report) -> None:
    names = {p.name for p in report.files}
    for expected in (
        "report.md",
        "report.html",
        "bwt_per_center_descending.csv",
        "bwt_per_center_descending.tex",
        "summary_descending.csv",
        "tests_descending.csv",
        "references.csv",
        "costs.csv",
        "runs.csv",
        "zero_shot_descending.csv",
        "zero_shot_descending.tex",
        "zero_shot_descending.png",
        "per_order_descending.png",
        "bwt_bars_descending.png",
        "heatmap_finetune_descending.png",
        "heatmap_replay_descending.png",
        *SUFFIXED,
    ):
        assert expected in names
    assert all(p.is_file() and p.parent == report.out_dir for p in report.files)
    for png in (p for p in report.files if p.suffix == ".png"):
        with Image.open(png) as image:
            assert image.format == "PNG" and min(image.size) >= 300
    assert report.runs == 20


@pytest.mark.parametrize(("suffix", "scale"), [("", 1.0), ("_volume_diff_ml", 10.0)])
def test_table1_means_in_the_csv(report, suffix, scale) -> None:
    rows = csv_rows(report.out_dir / f"bwt_per_center_descending{suffix}.csv")
    assert list(rows) == DESCENDING
    for strategy in ("finetune", "replay"):
        for center, expected in zip(DESCENDING, TABLE1[strategy], strict=True):
            # volume difference: lower is better, its BWT sign-aware (= 10 x the Dice BWT by construction)
            assert float(rows[center][f"{strategy} mean"]) == pytest.approx(scale * expected, abs=1e-12)
            assert rows[center][f"{strategy} n"] == "9"


def test_each_metric_has_its_references_in_its_units(report) -> None:
    dice, volume = (csv_rows(report.out_dir / f"references{s}.csv") for s in ("", "_volume_diff_ml"))
    assert float(dice["joint"]["zero-shot Dice mean"]) == pytest.approx(0.5)
    column = f"zero-shot {AbsoluteVolumeDifference.title} mean"
    assert float(volume["joint"][column]) == pytest.approx(20 - 10 * 0.5)
    assert float(volume["single"][column]) == pytest.approx(20 - 10 * 0.4)


def test_second_metric_has_its_own_section(report) -> None:
    text = (report.out_dir / "report.md").read_text()
    title = f"{AbsoluteVolumeDifference.title} (ml)"
    headline, volume = text.split(f"## Metric: {title}\n")
    assert "Headline metric: Dice (higher is better)" in headline
    assert f"Other metrics, each in its own section: {title}." in headline
    assert "_volume_diff_ml" not in headline  # the headline's files keep their names
    assert f"{AbsoluteVolumeDifference.title}: lower is better" in volume and "sign-aware" in volume
    assert "### References" in volume and "### Descending order" in volume
    assert "| joint | 1 | 15.00 ml |" in volume
    assert "| Milan | -2.84 ± 0.03 ml | 0.01 ± 0.03 ml |" in volume
    for name in SUFFIXED:
        if name.endswith(".png"):
            assert f"]({name})" in volume


def test_markdown_report_lists_tables_and_skipped_runs(report) -> None:
    text = (report.out_dir / "report.md").read_text()
    assert "| Milan | -0.284 ± 0.003 | 0.001 ± 0.003 |" in text and ": 20 finished parent runs read, " in text
    assert "| joint | 1 | 0.500 |" in text and "| single | 1 | 0.400 |" in text
    assert "Wilcoxon" in text and "![" in text
    reasons = {s.name: s.reason for s in report.skipped}
    assert reasons["replay-seed99"].startswith("unfinished")
    assert "no r_matrix.json" in reasons["missing-seed1"]
    assert reasons["broken-seed2"] == "r_matrix.json: seed: Field required"
    assert "stage1-BWH" not in reasons
    for name, reason in reasons.items():
        assert name in text and reason in text


def test_html_is_self_contained(report) -> None:
    page = (report.out_dir / "report.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?https?://""", page)
    images = re.findall(r'<img src="([^"]+)"', page)
    assert len(images) == sum(p.suffix == ".png" for p in report.files)
    assert all(uri.startswith("data:image/png;base64,") for uri in images)


def test_report_run_is_logged_and_never_read_as_a_parent(store, logged, report) -> None:
    run = store.client.get_run(report.run_id)
    assert run.info.run_name == "report" and run.data.tags["mscl.kind"] == "report"
    assert "mscl.strategy" not in run.data.tags
    logged_files = {a.path for a in store.client.list_artifacts(report.run_id)}
    assert logged_files == {p.name for p in report.files}
    assert len(read_parent_runs(store.client, logged).runs) == 20


def test_format_1_run_renders_as_dice_beside_format_2_runs(store, tmp_path) -> None:
    name, exp = store.experiment()
    store.log(exp, table1_runs("replay")[0], format_1=True)
    for rm in table1_runs("finetune")[:2]:
        store.log(exp, rm)
    result = build_report(name, tmp_path, tracking_uri=store.uri, log_to_mlflow=False)
    assert result.runs == 3 and result.skipped == []
    dice = csv_rows(tmp_path / "bwt_per_center_descending.csv")
    # seed 0 offsets every center but the last by (0 - 4) / 1000
    assert float(dice["Milan"]["replay mean"]) == pytest.approx(0.001 - 0.004, abs=1e-12)
    assert dice["Milan"]["replay n"] == "1" and dice["Milan"]["finetune n"] == "2"
    volume = csv_rows(tmp_path / "bwt_per_center_descending_volume_diff_ml.csv")
    assert "replay mean" not in volume["Milan"] and volume["Milan"]["finetune n"] == "2"
    text = (tmp_path / "report.md").read_text()
    assert f"No {AbsoluteVolumeDifference.title} scores in 1 run (replay-seed0)" in text


def test_single_seed_single_strategy_report(store, tmp_path) -> None:
    name, exp = store.experiment()
    store.log(exp, table1_runs("replay")[0])
    result = build_report(name, tmp_path, tracking_uri=store.uri, log_to_mlflow=False)
    text = (tmp_path / "report.md").read_text()
    assert result.runs == 1 and result.run_id is None
    assert "One seed only" in text and "Paired tests: not run" in text
    assert "nan" not in text.lower()
    assert ": 1 finished parent run read, 0 skipped." in text
    assert "R matrix of replay (Dice), descending order: values of 1 seed (Figure 5 form)." in text
    assert "std over 1" not in text and "1 seeds" not in text


def test_strategy_and_order_filters(store, logged, tmp_path) -> None:
    result = build_report(
        logged,
        tmp_path,
        tracking_uri=store.uri,
        strategies=["replay", "nope"],
        order="descending",
        log_to_mlflow=False,
    )
    text = (tmp_path / "report.md").read_text()
    assert result.runs == 9
    assert "No finished runs for the requested strategies: nope." in text
    with pytest.raises(MsclError, match="--order"):
        build_report(logged, tmp_path, tracking_uri=store.uri, order="sideways")  # type: ignore[arg-type]


def test_empty_and_unknown_experiments_are_clear_errors(store, tmp_path) -> None:
    name, exp = store.experiment()
    store.log(exp, table1_runs("replay")[0], finish=False)
    with pytest.raises(TrackingError, match=r"no finished runs.*1 skipped, first: unfinished"):
        build_report(name, tmp_path, tracking_uri=store.uri)
    with pytest.raises(TrackingError, match="unknown MLflow experiment 'nope'"):
        build_report("nope", tmp_path, tracking_uri=store.uri)
    with pytest.raises(TrackingError, match="no MLflow database"):
        build_report(name, tmp_path, tracking_uri=f"sqlite:///{tmp_path}/absent.db")


def test_runs_table_counts_seeds_and_lists_them(report) -> None:
    rows = csv_rows(report.out_dir / "runs.csv")
    assert list(rows["finetune"]) == ["strategy", "kind", "order", "runs", "seeds", "seed list"]
    assert (rows["finetune"]["runs"], rows["finetune"]["seeds"]) == ("9", "9")
    assert rows["finetune"]["seed list"] == ", ".join(map(str, range(9)))
    assert (rows["joint"]["seeds"], rows["joint"]["seed list"]) == ("1", "0")
    text = (report.out_dir / "report.md").read_text()
    assert "| strategy | kind | order | runs | seeds | seed list |" in text
    assert "| joint | joint | descending | 1 | 1 | 0 |" in text


def test_zero_shot_values_are_a_table_beside_figure_2(report) -> None:
    rows = csv_rows(report.out_dir / "zero_shot_descending.csv")
    assert list(rows) == [str(k) for k in range(1, 9)]
    assert rows["8"]["replay n"] == "9" and float(rows["8"]["replay mean"]) > 0
    text = (report.out_dir / "report.md").read_text()
    figure, table = text.index("](zero_shot_descending.png)"), text.index("**Zero-shot mean Dice versus")
    assert figure < table < text.index("](per_order_descending.png)")
    page = (report.out_dir / "report.html").read_text()
    caption = "<caption>Zero-shot mean Dice versus domains seen, descending order</caption>"
    assert page.index("Figure 2 form") < page.index(caption) < page.index("Figure 4 form")


def test_heatmap_caption_names_mean_and_std_over_the_seeds(report) -> None:
    text = (report.out_dir / "report.md").read_text()
    assert "R matrix of replay (Dice), descending order: mean (left) and std (right) over 9 seeds" in text
