"""The report's tables, and their markdown, CSV and LaTeX forms.

A cell is text, a number or a :class:`~mscl.reports.stats.Stat`. Markdown and LaTeX show a Stat as
``mean ± std`` (just the mean when there is one seed; the 95 % interval too where the table asks), followed
by the table's unit if it has one; CSV spreads it over ``mean, std, ci_low, ci_high, n`` columns with full
precision and empty cells for NaN. Every metric's tables are built by the same functions from its
:class:`~mscl.reports.compile.Section`: titles name the metric, file names carry its suffix.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable
from dataclasses import dataclass

from mscl.protocol.metrics import SUMMARIES
from mscl.reports.compile import COST_METRICS, Compiled, MetricInfo, MetricReport, Section
from mscl.reports.stats import CONFIDENCE, MIN_PAIRED, Stat
from mscl.tracking.tree import SECONDS_PER_STAGE, WALL_TIME

Cell = str | int | float | Stat
DASH = "—"
METRIC_LABELS = {"acc": "ACC", "bwt": "BWT", "fwt": "FWT", "forgetting": "forgetting"}
COST_LABELS = {
    WALL_TIME: "wall time (s)",
    SECONDS_PER_STAGE: "seconds per stage",
    "gpu_hours": "GPU-hours",
    "peak_memory_mb": "peak memory (MB)",
    "replay_memory_bytes": "replay memory (bytes)",
}
STAT_PARTS = ("mean", "std", "ci_low", "ci_high", "n")


def three_decimals(value: float) -> str:
    """Three decimals, the precision of the paper's tables (scores bounded in [0, 1])."""
    return f"{value:.3f}"


def two_decimals(value: float) -> str:
    """Two decimals: scores unbounded above, such as volumes in ml (10 µl resolution)."""
    return f"{value:.2f}"


def magnitude(value: float) -> str:
    """Costs: thousands separators for large values, three significant digits for small ones."""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def metric_number(info: MetricInfo) -> Callable[[float], str]:
    """How a metric's values are written: three decimals when bounded in [0, 1], else two."""
    return three_decimals if info.bounded else two_decimals


@dataclass(frozen=True)
class Table:
    """One table: a file stem, a title, a header row, body rows and a footer with definitions.

    ``number`` writes every number; ``unit`` follows every shown Stat.
    """

    name: str
    title: str
    columns: list[str]
    rows: list[list[Cell]]
    footer: str = ""
    ci: bool = False
    number: Callable[[float], str] = three_decimals
    unit: str = ""

    def text(self, cell: Cell, pm: str = " ± ") -> str:
        """A cell as text for markdown or LaTeX (``pm`` joins mean and std)."""
        if isinstance(cell, Stat):
            if cell.n == 0:
                return DASH
            shown = self.number(cell.mean)
            if not math.isnan(cell.std):
                shown += pm + self.number(cell.std)
            if self.ci and not math.isnan(cell.ci_low):
                shown += f" [{self.number(cell.ci_low)}, {self.number(cell.ci_high)}]"
            return f"{shown} {self.unit}" if self.unit else shown
        if isinstance(cell, float):
            return DASH if math.isnan(cell) else self.number(cell)
        return str(cell)


def to_markdown(table: Table) -> str:
    """A GitHub-flavoured markdown table (header, separator, rows)."""
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(table.text(c) for c in row) + " |" for row in table.rows]
    return "\n".join(lines)


def to_csv(table: Table) -> str:
    """CSV with one column per Stat part (full precision, empty for NaN)."""
    stat_cols = {j for row in table.rows for j, c in enumerate(row) if isinstance(c, Stat)}
    header = [part for j, col in enumerate(table.columns) for part in _csv_header(col, j in stat_cols)]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in table.rows:
        writer.writerow([part for cell in row for part in _csv_cells(cell)])
    return buffer.getvalue()


def _csv_header(column: str, is_stat: bool) -> list[str]:
    return [f"{column} {part}" for part in STAT_PARTS] if is_stat else [column]


def _csv_cells(cell: Cell) -> list[str]:
    if isinstance(cell, Stat):
        return [_csv_number(getattr(cell, part)) for part in STAT_PARTS]
    return [_csv_number(cell) if isinstance(cell, float) else str(cell)]


def _csv_number(value: float) -> str:
    return "" if isinstance(value, float) and math.isnan(value) else repr(value)


def to_latex(table: Table) -> str:
    """A booktabs ``table`` environment with the title as caption and the footer as a note."""
    align = "l" + "r" * (len(table.columns) - 1)
    body = [" & ".join(_latex_escape(table.text(c, pm=" ± ")) for c in row) + r" \\" for row in table.rows]
    return "\n".join(
        [
            r"\begin{table}[t]",
            r"\centering",
            rf"\caption{{{_latex_escape(table.title)}}}",
            rf"\label{{tab:{table.name}}}",
            rf"\begin{{tabular}}{{{align}}}",
            r"\toprule",
            " & ".join(_latex_escape(c) for c in table.columns) + r" \\",
            r"\midrule",
            *body,
            r"\bottomrule",
            r"\end{tabular}",
            *([rf"\par\smallskip{{\footnotesize {_latex_escape(table.footer)}}}"] if table.footer else []),
            r"\end{table}",
            "",
        ]
    )


_LATEX = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "±": r"$\pm$",
    "—": "---",
    "≥": r"$\geq$",
}


def _latex_escape(text: str) -> str:
    return "".join(_LATEX.get(ch, ch) for ch in text)


def sign_note(info: MetricInfo) -> str:
    """Whether higher or lower is better, and that BWT, FWT and forgetting are sign-aware."""
    if info.higher_is_better:
        return (
            f"{info.title}: higher is better. BWT, FWT and forgetting are sign-aware: positive BWT and FWT "
            "mean better, positive forgetting worse."
        )
    return (
        f"{info.title}: lower is better, so BWT, FWT and forgetting are computed on -R (sign-aware): "
        "positive BWT and FWT still mean better, positive forgetting worse; ACC and zero-shot scores stay in "
        f"{info.unit or 'its units'}."
    )


def _lower_note(info: MetricInfo) -> str:
    return "" if info.higher_is_better else " " + sign_note(info)


def _bwt_footer(info: MetricInfo) -> str:
    return (
        f"Per-center BWT(c) = R[K, c] - R[s(c), c]: {info.title} on center c after the last stage minus "
        "right after the stage s(c) that trained on c (positive: later training helped c). The center "
        "trained last has BWT 0 by definition and that zero enters its mean. Mean ± sample std over seeds."
        + _lower_note(info)
    )


def _summary_footer(info: MetricInfo) -> str:
    t = info.title
    return (
        f"ACC = mean {t} of the final model over all centers. BWT = mean per-center BWT over the first K-1 "
        f"stages. FWT = mean over stages i > 1 of R[i-1, c_i] - baseline(c_i), the zero-shot {t} on the next "
        "center minus the untrained model's (— without a baseline row). Forgetting = mean over the first K-1 "
        f"centers of the best {t} reached after training on the center minus the final {t}. Mean ± sample "
        f"std over seeds [{CONFIDENCE:.0%} t-interval]." + _lower_note(info)
    )


def _zero_shot_footer(info: MetricInfo) -> str:
    return (
        f"Zero-shot mean {info.title} over all centers, seen or not, after each number of domains (centers) "
        "seen: the values of Figure 2. Mean ± sample std over the seeds that reached that stage."
    )


def _reference_footer(info: MetricInfo) -> str:
    t = info.title
    return (
        f"Zero-shot mean {t} over all centers. single: one model per center trained alone, the mean over "
        f"those models of each model's mean {t} over every center (the paper's single-domain line); joint: "
        "the model trained on all centers pooled. Mean ± sample std over seeds "
        f"[{CONFIDENCE:.0%} t-interval]."
    )


TESTS_FOOTER = (
    "Two-sided Wilcoxon signed-rank test of A - B over the seeds both strategies ran (paired by seed, "
    f"which also fixes the random order); run only with at least {MIN_PAIRED} matched seeds. With n seeds "
    "the smallest attainable p is 2/2^n (0.0625 for 5, 0.0039 for 9); no correction for multiple tests."
)


def bwt_table(section: Section, centers: list[str]) -> Table:
    """Per-center BWT (rows = centers, columns = strategies), the paper's Table 1 form; a center some run
    trained on is shown even where its BWT is missing (an extended study's center not scored at the end)."""
    info, strategies = section.metric, list(section.per_center_bwt)
    trained = {center for group in section.groups for run in group.runs for center in run.rmatrix.order}
    rows: list[list[Cell]] = [
        [center, *(section.per_center_bwt[s][center] for s in strategies)]
        for center in centers
        if center in trained
    ]
    return _section_table(
        section,
        "bwt_per_center",
        f"Per-center {info.title} BWT",
        ["center", *strategies],
        rows,
        _bwt_footer(info),
    )


def summary_table(section: Section) -> Table:
    """ACC, BWT, FWT and forgetting per strategy with spread and 95 % intervals."""
    info = section.metric
    rows: list[list[Cell]] = [
        [g.strategy, len(g.runs), *(section.summary[g.strategy][m] for m in SUMMARIES)]
        for g in section.groups
    ]
    columns = ["strategy", "seeds", *(METRIC_LABELS[m] for m in SUMMARIES)]
    title = f"Continual metrics of {info.title}"
    return _section_table(section, "summary", title, columns, rows, _summary_footer(info), ci=True)


def zero_shot_table(section: Section) -> Table:
    """Figure 2's numbers: zero-shot mean score (rows = domains seen, columns = strategies)."""
    info, strategies = section.metric, list(section.zero_shot)
    stages = max(len(stats) for stats in section.zero_shot.values())
    empty = Stat.of([])
    rows: list[list[Cell]] = [
        [k + 1, *(s[k] if k < len(s) else empty for s in section.zero_shot.values())] for k in range(stages)
    ]
    title = f"Zero-shot mean {info.title} versus domains seen"
    return _section_table(
        section, "zero_shot", title, ["domains seen", *strategies], rows, _zero_shot_footer(info)
    )


def _section_table(
    section: Section,
    stem: str,
    what: str,
    columns: list[str],
    rows: list[list[Cell]],
    footer: str,
    ci: bool = False,
) -> Table:
    """A table of one metric and order kind: ``<stem>_<order><suffix>``, ``<what>, <order> order``, the
    metric's number format and unit."""
    info = section.metric
    return Table(
        f"{stem}_{section.order_kind}{info.suffix}",
        f"{what}, {section.order_kind} order",
        columns,
        rows,
        footer,
        ci=ci,
        number=metric_number(info),
        unit=info.unit,
    )


def tests_table(section: Section) -> Table | None:
    """Paired tests with enough matched seeds, or None when there is none."""
    info = section.metric
    rows: list[list[Cell]] = [
        [METRIC_LABELS[t.metric], t.a, t.b, t.n, t.mean_diff, t.p_value]
        for t in section.tests
        if t.n >= MIN_PAIRED
    ]
    if not rows:
        return None
    diff = f"mean A - B ({info.unit})" if info.unit else "mean A - B"
    return Table(
        f"tests_{section.order_kind}{info.suffix}",
        f"Paired tests between strategies on {info.title}, {section.order_kind} order",
        ["metric", "A", "B", "matched seeds", diff, "p (Wilcoxon)"],
        rows,
        TESTS_FOOTER,
    )


def reference_table(report: MetricReport) -> Table | None:
    """A metric's single-domain and joint references, or None without reference runs."""
    if not report.references:
        return None
    info = report.info
    rows: list[list[Cell]] = [[name, stat.n, stat] for name, stat in report.references.items()]
    return Table(
        f"references{info.suffix}",
        f"Reference strategies, zero-shot {info.title}",
        ["strategy", "seeds", f"zero-shot {info.title}"],
        rows,
        _reference_footer(info),
        ci=True,
        number=metric_number(info),
        unit=info.unit,
    )


def cost_table(compiled: Compiled) -> Table | None:
    """Cost metrics per strategy and order kind, only the columns some run logged."""
    present = [m for m in COST_METRICS if any(m in c for c in compiled.costs.values())]
    if not present:
        return None
    empty = Stat.of([])
    rows: list[list[Cell]] = [
        [strategy, kind, *(costs.get(m, empty) for m in present)]
        for (strategy, kind), costs in compiled.costs.items()
    ]
    footer = "Mean ± sample std over seeds of the cost metrics logged on each run (— where none logged it)."
    columns = ["strategy", "order", *(COST_LABELS[m] for m in present)]
    return Table("costs", "Cost", columns, rows, footer, number=magnitude)
