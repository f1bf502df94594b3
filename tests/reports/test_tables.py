"""Tables as markdown, CSV and LaTeX."""

from __future__ import annotations

import csv
import io

from report_cases import parent, table1_runs

from mscl.reports.compile import compile_runs
from mscl.reports.stats import Stat
from mscl.reports.tables import Table, bwt_table, summary_table, to_csv, to_latex, to_markdown

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


def test_bwt_and_summary_tables_from_compiled_runs() -> None:
    compiled = compile_runs([parent(rm) for s in ("finetune", "replay") for rm in table1_runs(s)])
    section = compiled.sections[0]
    bwt = to_markdown(bwt_table(section, compiled.centers))
    assert "| Milan | -0.284 ± 0.003 | 0.001 ± 0.003 |" in bwt
    assert "| AMU | 0.000 ± 0.000 | 0.000 ± 0.000 |" in bwt
    summary = summary_table(section)
    assert summary.columns == ["strategy", "seeds", "ACC", "BWT", "FWT", "forgetting"]
    assert "[" in to_markdown(summary)  # 95 % intervals shown
