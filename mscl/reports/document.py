"""Lay a compiled report out as blocks and write every file: report.md, report.html, CSV, LaTeX, PNG.

The headline metric comes first, laid out under the report's own headings with unsuffixed file names; every
other metric follows in a section of its own, the same blocks one heading level down, each file name ending
in ``_<metric>`` (see :attr:`mscl.reports.compile.MetricInfo.suffix`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from mscl.reports import plots
from mscl.reports.compile import Compiled, MetricReport, Section, slug
from mscl.reports.render import (
    Block,
    Bullets,
    Heading,
    Image,
    Paragraph,
    TableBlock,
    to_html_document,
    to_markdown_document,
)
from mscl.reports.stats import MIN_PAIRED
from mscl.reports.tables import (
    Cell,
    Table,
    bwt_table,
    cost_table,
    reference_table,
    sign_note,
    summary_table,
    tests_table,
    to_csv,
    to_latex,
    zero_shot_table,
)
from mscl.tracking.queries import ParentRun, SkippedRun
from mscl.words import counted

DEFINITIONS = [
    "R[i, c]: a metric's test score (prediction and label binarised at the evaluation threshold, 0.5 by "
    "default; mean over the center's test subjects) on center c after training stage i; K stages; s(c) the "
    "stage that trained on c. Every metric has its own R matrix.",
    "Sign-aware continual metrics: for a metric where lower is better, BWT, FWT and forgetting are "
    "computed on -R, so a positive BWT or FWT always means better; ACC and zero-shot scores stay in the "
    "metric's units.",
    "Zero-shot score after stage i: mean of row i over all centers, seen or not (Figures 2 and 4).",
    "References (dashed lines): single-domain = mean over the one-center models of each model's mean score "
    "over all centers; joint = mean score over all centers of the model trained on all centers pooled.",
    "Spread: sample standard deviation over seeds (n - 1); intervals: 95 % Student-t over seeds.",
    f"Paired tests: two-sided Wilcoxon signed-rank over matched seeds, only with at least {MIN_PAIRED}.",
]


@dataclass(frozen=True)
class ReportContext:
    """Where the runs came from, for the report's header."""

    experiment: str
    tracking_uri: str
    runs: Sequence[ParentRun]
    skipped: Sequence[SkippedRun]


def write_report(compiled: Compiled, context: ReportContext, out_dir: Path) -> list[Path]:
    """Write the figures, the tables (CSV and LaTeX), report.md and report.html into ``out_dir``.

    Returns:
        Every file written, report.md and report.html last.
    """
    colors = plots.palette(sorted({r.strategy for r in context.runs}))
    blocks: list[Block] = [
        Heading(f"mscl report: {context.experiment}", 1),
        Paragraph(_header(context, compiled)),
    ]
    if compiled.notes:
        blocks += [Heading("Notes"), Bullets(compiled.notes)]
    blocks += [Heading("Runs"), TableBlock(_runs_table(context.runs))]
    for report in compiled.metrics.values():
        blocks += _metric_blocks(report, compiled.centers, colors, out_dir)
    if (costs := cost_table(compiled)) is not None:
        blocks += [Heading("Cost"), TableBlock(costs)]
    blocks += [
        Heading("Skipped runs"),
        _skipped(context.skipped),
        Heading("Definitions"),
        Bullets(DEFINITIONS),
    ]
    files = [b.path for b in blocks if isinstance(b, Image)]
    for table in (b.table for b in blocks if isinstance(b, TableBlock)):
        files += _write(out_dir / f"{table.name}.csv", to_csv(table))
        files += _write(out_dir / f"{table.name}.tex", to_latex(table))
    files += _write(out_dir / "report.md", to_markdown_document(blocks))
    files += _write(out_dir / "report.html", to_html_document(blocks, f"mscl report: {context.experiment}"))
    return files


def _write(path: Path, text: str) -> list[Path]:
    path.write_text(text, encoding="utf-8")
    return [path]


def _header(context: ReportContext, compiled: Compiled) -> str:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    headline, *others = (m.info for m in compiled.metrics.values())
    more = f" Other metrics, each in its own section: {', '.join(o.label for o in others)}." if others else ""
    return (
        f"Experiment {context.experiment!r} at {context.tracking_uri}: "
        f"{counted(len(context.runs), 'finished parent run')} read, {len(context.skipped)} skipped. "
        f"Generated {stamp}. Headline metric: {headline.label} "
        f"({headline.direction}).{more}"
    )


def _runs_table(runs: Sequence[ParentRun]) -> Table:
    """Runs per (strategy, kind, order kind): how many runs, how many distinct seeds, and which."""
    groups: dict[tuple[str, str, str], list[int]] = {}
    for run in runs:
        groups.setdefault((run.strategy, run.rmatrix.kind, run.order_kind), []).append(run.seed)
    rows: list[list[Cell]] = [
        [strategy, kind, order, len(seeds), len(set(seeds)), ", ".join(map(str, sorted(set(seeds))))]
        for (strategy, kind, order), seeds in sorted(groups.items())
    ]
    columns = ["strategy", "kind", "order", "runs", "seeds", "seed list"]
    footer = "runs: finished runs read; seeds: how many distinct seeds they ran; seed list: which."
    return Table("runs", "Runs per strategy", columns, rows, footer)


def _skipped(skipped: Sequence[SkippedRun]) -> Block:
    if not skipped:
        return Paragraph("None.")
    return Bullets([f"{s.name or '(unnamed)'} ({s.run_id}): {s.reason}" for s in skipped])


def _metric_blocks(report: MetricReport, centers: list[str], colors: plots.Palette, out: Path) -> list[Block]:
    """The references and every order kind's section of one metric.

    The headline metric's blocks sit at level 2, as the report always had them; any other metric gets a level
    2 heading with its direction, and its blocks at level 3.
    """
    info = report.info
    level = 2 if info.headline else 3
    blocks: list[Block] = (
        [] if info.headline else [Heading(f"Metric: {info.label}"), Paragraph(sign_note(info))]
    )
    if (refs := reference_table(report)) is not None:
        blocks += [Heading("References", level), TableBlock(refs)]
    for section in report.sections:
        blocks += _section_blocks(section, report, centers, colors, out, level)
    return blocks


def _section_blocks(
    section: Section, report: MetricReport, centers: list[str], colors: plots.Palette, out: Path, level: int
) -> list[Block]:
    kind, info = section.order_kind, section.metric
    name = f"{kind}{info.suffix}.png"
    blocks: list[Block] = [
        Heading(f"{kind.capitalize()} order", level),
        TableBlock(bwt_table(section, centers)),
        Image(
            plots.bwt_bars(section, centers, colors, out / f"bwt_bars_{name}"),
            f"Per-center {info.title} BWT by strategy, {kind} order; error bars: std over seeds.",
        ),
        TableBlock(summary_table(section)),
    ]
    tests = tests_table(section)
    blocks.append(
        TableBlock(tests)
        if tests
        else Paragraph(
            f"Paired tests: not run (fewer than {MIN_PAIRED} matched seeds, or a single strategy)."
        )
    )
    blocks += [
        Image(
            plots.zero_shot_plot(section, report.references, colors, out / f"zero_shot_{name}"),
            f"Zero-shot mean {info.title} versus domains seen, {kind} order (Figure 2 form); "
            "band: ± std over seeds.",
        ),
        TableBlock(zero_shot_table(section)),
    ]
    blocks.append(
        Image(
            plots.per_order_plot(section, report.references, colors, out / f"per_order_{name}"),
            f"Zero-shot {info.title} per domain sequence, {kind} order (Figure 4 form)"
            + (f"; first {plots.MAX_PANELS} of {len(section.per_order)} orders." if _many(section) else "."),
        )
    )
    for strategy, heatmap in section.heatmaps.items():
        path = out / f"heatmap_{slug(strategy)}_{name}"
        blocks.append(
            Image(
                plots.heatmap_plot(strategy, heatmap, kind, info, path),
                f"R matrix of {strategy} ({info.title}), {kind} order: {plots.heatmap_content(heatmap)} "
                "(Figure 5 form).",
            )
        )
    return blocks


def _many(section: Section) -> bool:
    return len(section.per_order) > plots.MAX_PANELS
