"""Tables as markdown, CSV and LaTeX."""

from __future__ import annotations

import csv
import io

import pytest
from report_cases import VOLUME, parent, rmatrix, table1_runs

from mscl.metrics.volume import AbsoluteVolumeDifference
from mscl.reports.compile import compile_runs
from mscl.reports.stats import Stat
from mscl.reports.tables import (
    Table,
    bwt_table,
    reference_table,
    summary_table,
    to_csv,
    to_latex,
    to_markdown,
    two_decimals,
    zero_shot_table,
)
from mscl.reports.tables import tests_table as paired_tests_table  # not collected as a test

TABLE = Table(
    "demo_table",
    "Demo_title",
    ["center", "finetune"],
    [["BWH", Stat.of([0.1, 0.3])], ["AMU", Stat.of([0.2])], ["UCSF", Stat.of([])]],
    footer="50% of_it",
)


def test_markdown_shows_mean_and_std_and_no_nan() -> None:
    text = to_markdown(TABLE)
    assert text.splitlines()[:2] == ["| center | finetune |", "|---|---|"]
    assert "| BWH | 0.200 ± 0.141 |" in text
    assert "| AMU | 0.200 |" in text  # one seed: the mean alone
    assert "| UCSF | — |" in text
    assert "nan" not in text.lower()


def test_csv_spreads_stats_over_columns_with_empty_nan() -> None:
    rows = list(csv.DictReader(io.StringIO(to_csv(TABLE))))
    assert list(rows[0]) == ["center", *(f"finetune {p}" for p in ("mean", "std", "ci_low", "ci_high", "n"))]
    assert float(rows[0]["finetune mean"]) == 0.2
    assert rows[1]["finetune std"] == "" and rows[1]["finetune n"] == "1"


def test_latex_is_a_booktabs_table_with_escapes() -> None:
    tex = to_latex(TABLE)
    assert r"\begin{tabular}{lr}" in tex and r"\toprule" in tex and r"\bottomrule" in tex
    assert r"BWH & 0.200 $\pm$ 0.141 \\" in tex
    assert r"\caption{Demo\_title}" in tex and r"50\% of\_it" in tex
    assert "UCSF & --- \\\\" in tex


def test_unbounded_numbers_with_their_unit() -> None:
    table = Table(
        "vol",
        "Volume",
        ["center", "finetune"],
        [["BWH", Stat.of([2.5, 3.5])]],
        number=two_decimals,
        unit="ml",
    )
    assert "| BWH | 3.00 ± 0.71 ml |" in to_markdown(table)
    assert r"BWH & 3.00 $\pm$ 0.71 ml \\" in to_latex(table)
    assert to_markdown(Table("e", "E", ["c", "v"], [["x", Stat.of([])]], unit="ml")).endswith("| x | — |")


@pytest.fixture(scope="module")
def compiled():
    return compile_runs([parent(rm) for s in ("finetune", "replay") for rm in table1_runs(s)])


def test_bwt_and_summary_tables_from_compiled_runs(compiled) -> None:
    section = compiled.headline.sections[0]
    table = bwt_table(section, compiled.centers)
    assert table.name == "bwt_per_center_descending" and "Dice" in table.title
    bwt = to_markdown(table)
    assert "| Milan | -0.284 ± 0.003 | 0.001 ± 0.003 |" in bwt
    assert "| AMU | 0.000 ± 0.000 | 0.000 ± 0.000 |" in bwt
    summary = summary_table(section)
    assert summary.name == "summary_descending"
    assert summary.columns == ["strategy", "seeds", "ACC", "BWT", "FWT", "forgetting"]
    assert "[" in to_markdown(summary)  # 95 % intervals shown
    assert "-R" not in summary.footer  # higher is better: no sign note


def test_lower_is_better_metric_tables_carry_unit_suffix_and_sign_note(compiled) -> None:
    section = compiled.metrics[VOLUME].sections[0]
    table = bwt_table(section, compiled.centers)
    assert table.name == "bwt_per_center_descending_volume_diff_ml"
    assert (
        AbsoluteVolumeDifference.title in table.title
        and "lower is better" in table.footer
        and "-R" in table.footer
    )
    bwt = to_markdown(table)  # sign-aware: 10 times the Dice BWT, in ml
    assert "| Milan | -2.84 ± 0.03 ml | 0.01 ± 0.03 ml |" in bwt
    assert "| AMU | 0.00 ± 0.00 ml | 0.00 ± 0.00 ml |" in bwt
    summary = summary_table(section)
    assert summary.name == "summary_descending_volume_diff_ml" and "-R" in summary.footer
    acc = summary.text(summary.rows[1][2])  # replay's ACC: 20 - 10 * Dice ACC, not negated
    assert acc.startswith("14.") and acc.endswith(" ml")
    tests = paired_tests_table(section)
    assert tests is not None and tests.name == "tests_descending_volume_diff_ml"
    assert "mean A - B (ml)" in tests.columns


def test_reference_table_per_metric() -> None:
    joint = parent(rmatrix("joint", 0, ["joint"], ["A", "B"], [[0.7, 0.5]], kind="joint"))
    compiled = compile_runs([joint])
    dice, volume = (reference_table(compiled.metrics[m]) for m in ("dice", VOLUME))
    assert dice is not None and volume is not None
    assert (dice.name, volume.name) == ("references", "references_volume_diff_ml")
    assert "| joint | 1 | 0.600 |" in to_markdown(dice)
    assert "| joint | 1 | 14.00 ml |" in to_markdown(volume)
    assert (
        dice.columns[-1] == "zero-shot Dice"
        and volume.columns[-1] == f"zero-shot {AbsoluteVolumeDifference.title}"
    )


def test_zero_shot_table_holds_figure_2_values(compiled) -> None:
    section = compiled.headline.sections[0]
    table = zero_shot_table(section)
    assert table.name == "zero_shot_descending" and "Dice" in table.title
    assert table.columns == ["domains seen", "finetune", "replay"]
    assert [row[0] for row in table.rows] == list(range(1, 9))
    assert table.rows[2][1:] == [section.zero_shot["finetune"][2], section.zero_shot["replay"][2]]
    first = section.zero_shot["replay"][0]
    assert f"| 1 | {table.text(section.zero_shot['finetune'][0])} | {table.text(first)} |" in to_markdown(
        table
    )
    header = next(csv.reader(io.StringIO(to_csv(table))))
    assert header[:3] == ["domains seen", "finetune mean", "finetune std"]
    volume = zero_shot_table(compiled.metrics[VOLUME].sections[0])
    assert volume.name == "zero_shot_descending_volume_diff_ml" and volume.unit == "ml"


def test_zero_shot_table_dashes_stages_a_strategy_did_not_reach() -> None:
    centers = ["X", "Y", "Z"]
    short = rmatrix("short", 0, ["X", "Y"], centers, [[0.3, 0.0, 0.0], [0.3, 0.6, 0.0]], with_volume=False)
    full = rmatrix("full", 0, centers, centers, [[0.3] * 3, [0.6] * 3, [0.9] * 3], with_volume=False)
    (section,) = compile_runs([parent(short, "custom"), parent(full, "custom")]).headline.sections
    text = to_markdown(zero_shot_table(section))
    assert "| 1 | 0.300 | 0.100 |" in text and "| 2 | 0.600 | 0.300 |" in text
    assert "| 3 | 0.900 | — |" in text
