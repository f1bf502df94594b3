"""Compile the R matrices of many (strategy, seed) runs into the numbers a report shows, metric by metric.

The metrics are those found in the runs' ``r_matrix.json`` files (the union; the headline metric first). A run
contributes to every metric it has and is left out, with a note, of the others. For each metric, runs are
grouped by strategy and order kind (``descending``, ``random``, ``custom``; ``extended`` for a study that
``mscl extend`` added centers to). Every matrix is read in canonical
center columns, so per-center numbers line up whatever the training order. Continual metrics come from
:func:`mscl.protocol.metrics.summarize` (sign-aware: positive BWT always means better); statistics over
seeds from :mod:`mscl.reports.stats`.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from mscl.errors import MsclError
from mscl.metrics.registry import METRICS
from mscl.protocol.kinds import SEQUENTIAL_KINDS
from mscl.protocol.metrics import SUMMARIES, ContinualSummary, summarize
from mscl.reports.stats import PairedTest, Stat, paired_test
from mscl.tracking.queries import EXTENDED_ORDER_KIND, ParentRun
from mscl.tracking.rmatrix import MetricMatrix
from mscl.tracking.tree import SECONDS_PER_STAGE, WALL_TIME
from mscl.words import counted

ORDER_KINDS = ("descending", "random", "custom", EXTENDED_ORDER_KIND)
COST_METRICS = (WALL_TIME, SECONDS_PER_STAGE, "gpu_hours", "peak_memory_mb", "replay_memory_bytes")
PAIRED_KEYS = ("acc", "bwt")
RunKey = tuple[str, str]
"""(strategy, order kind); ``reference`` is the order kind of every single-domain and joint run."""


@dataclass(frozen=True)
class MetricInfo:
    """How a report names, formats and orients one metric."""

    name: str
    title: str
    unit: str
    higher_is_better: bool
    bounds: tuple[float, float | None]
    headline: bool = False

    @property
    def bounded(self) -> bool:
        """Whether the metric has an upper bound (Dice, rates: [0, 1]); ml volumes have none."""
        return self.bounds[1] is not None

    @property
    def label(self) -> str:
        """The title and its ``(unit)``: ``Dice``, ``abs. volume diff. (ml)``."""
        return f"{self.title} ({self.unit})" if self.unit else self.title

    @property
    def direction(self) -> str:
        """``higher is better`` or ``lower is better``."""
        return "higher is better" if self.higher_is_better else "lower is better"

    @property
    def suffix(self) -> str:
        """File-name suffix: none for the headline metric (its files keep their names), else ``_<name>``."""
        return "" if self.headline else f"_{slug(self.name)}"


def describe_metric(name: str, stored: MetricMatrix, headline: bool = False) -> MetricInfo:
    """The registry's title, unit, direction and bounds of ``name``.

    A metric the registry does not know or cannot load (a plugin not installed here) is named by ``name``,
    without a unit, with the direction and bounds ``stored`` in the r_matrix.
    """
    try:
        cls = METRICS.get(name)
    except MsclError:
        return MetricInfo(name, name, "", stored.higher_is_better, stored.bounds, headline)
    return MetricInfo(name, cls.title, cls.unit, cls.higher_is_better, cls.bounds, headline)


@dataclass(frozen=True)
class Group:
    """The runs of one strategy under one order kind, each with its continual summary of one metric."""

    strategy: str
    order_kind: str
    runs: list[ParentRun]
    summaries: list[ContinualSummary]

    @property
    def fixed_order(self) -> list[str] | None:
        """The training order shared by every run, or None when the runs differ."""
        orders = {tuple(run.rmatrix.order) for run in self.runs}
        return list(orders.pop()) if len(orders) == 1 else None

    def per_seed(self, key: str) -> dict[int, float]:
        """Summary ``key`` (``acc``, ``bwt``, ``fwt``, ``forgetting``) of every run, by seed."""
        return {run.seed: s.summaries()[key] for run, s in zip(self.runs, self.summaries, strict=True)}


@dataclass(frozen=True)
class Heatmap:
    """Mean and std over seeds of R for a fixed order; columns in training order."""

    order: list[str]
    mean: np.ndarray
    std: np.ndarray
    n: int


@dataclass(frozen=True)
class OrderPanel:
    """Zero-shot curves of every strategy trained in one order (mean over the runs sharing it)."""

    seeds: list[int]
    curves: dict[str, list[float]]


@dataclass
class Section:
    """Everything about one metric of the continual strategies trained under one order kind."""

    metric: MetricInfo
    order_kind: str
    groups: list[Group]
    per_center_bwt: dict[str, dict[str, Stat]]
    summary: dict[str, dict[str, Stat]]
    zero_shot: dict[str, list[Stat]]
    per_order: dict[tuple[str, ...], OrderPanel]
    heatmaps: dict[str, Heatmap]
    tests: list[PairedTest]


@dataclass
class MetricReport:
    """One metric's sections (one per order kind) and references (single-domain, joint)."""

    info: MetricInfo
    sections: list[Section]
    references: dict[str, Stat]


@dataclass
class Compiled:
    """The whole report's numbers."""

    centers: list[str]
    metrics: dict[str, MetricReport]
    """By metric name, the headline metric first."""
    costs: dict[RunKey, dict[str, Stat]]
    notes: list[str] = field(default_factory=list)

    @property
    def headline(self) -> MetricReport:
        """The headline metric's report (Dice unless the runs put another metric first)."""
        return next(iter(self.metrics.values()))


def canonical_centers(runs: Sequence[ParentRun]) -> list[str]:
    """Center order for tables: the descending training order if one ran, else the runs' columns."""
    seen: list[str] = []
    descending = [r.rmatrix.order for r in runs if r.order_kind == "descending" and _sequential(r)]
    for names in [*descending[:1], *(r.rmatrix.centers for r in runs)]:
        seen += [c for c in names if c not in seen]
    return seen


def metric_names(runs: Sequence[ParentRun]) -> list[str]:
    """Every metric of the runs: the most common headline first, then the others as first found."""
    headlines = Counter(run.rmatrix.headline for run in runs)
    names = [headlines.most_common(1)[0][0]] if headlines else []
    for run in runs:
        names += [name for name in run.rmatrix.metrics if name not in names]
    return names


def compile_runs(runs: Sequence[ParentRun]) -> Compiled:
    """Group ``runs`` and compute every table's and plot's numbers, for every metric."""
    centers = canonical_centers(runs)
    keyed = _keyed(runs)
    reports: dict[str, MetricReport] = {}
    for i, name in enumerate(metric_names(runs)):
        scored = [r for r in runs if name in r.rmatrix.metrics]
        info = describe_metric(name, scored[0].rmatrix.metric(name), headline=i == 0)
        reports[name] = _metric_report(info, _keyed(scored), centers)
    costs = {key: c for key, group in keyed.items() if (c := _costs(group))}
    compiled = Compiled(centers, reports, costs)
    compiled.notes += _notes(keyed, centers, runs, [r.info for r in reports.values()])
    return compiled


def _sequential(run: ParentRun) -> bool:
    return run.rmatrix.kind in SEQUENTIAL_KINDS


def _keyed(runs: Sequence[ParentRun]) -> dict[RunKey, list[ParentRun]]:
    """Runs by (strategy, order kind), sorted, each by seed; references ignore the order kind."""
    keyed: dict[RunKey, list[ParentRun]] = {}
    for run in runs:
        kind = run.order_kind if _sequential(run) else "reference"
        keyed.setdefault((run.strategy, kind), []).append(run)
    return {key: sorted(keyed[key], key=lambda r: r.seed) for key in sorted(keyed)}


def _summary(run: ParentRun, info: MetricInfo) -> ContinualSummary:
    rm, matrix = run.rmatrix, run.rmatrix.metric(info.name)
    baseline = None if matrix.baseline_row is None else matrix.baseline_row.tolist()
    return summarize(matrix.r, rm.order, rm.centers, baseline, _sequential(run), info.higher_is_better)


def _metric_report(
    info: MetricInfo, keyed: dict[RunKey, list[ParentRun]], centers: list[str]
) -> MetricReport:
    groups = [Group(s, k, rs, [_summary(r, info) for r in rs]) for (s, k), rs in keyed.items()]
    sequential = [g for g in groups if g.order_kind != "reference"]
    sections = [
        _section(info, kind, [g for g in sequential if g.order_kind == kind], centers)
        for kind in ORDER_KINDS
        if any(g.order_kind == kind for g in sequential)
    ]
    references = {
        g.strategy: Stat.of(float(np.nanmean(s.zero_shot)) for s in g.summaries)
        for g in groups
        if g.order_kind == "reference"
    }
    return MetricReport(info, sections, references)


def _section(info: MetricInfo, order_kind: str, groups: list[Group], centers: list[str]) -> Section:
    return Section(
        metric=info,
        order_kind=order_kind,
        groups=groups,
        per_center_bwt={g.strategy: _per_center_bwt(g, centers) for g in groups},
        summary={g.strategy: {m: Stat.of(g.per_seed(m).values()) for m in SUMMARIES} for g in groups},
        zero_shot={g.strategy: _zero_shot(g) for g in groups},
        per_order=_per_order(groups),
        heatmaps={g.strategy: h for g in groups if (h := _heatmap(g, info.name)) is not None},
        tests=[
            paired_test(m, a.strategy, b.strategy, a.per_seed(m), b.per_seed(m))
            for a, b in itertools.combinations(groups, 2)
            for m in PAIRED_KEYS
        ],
    )


def _per_center_bwt(group: Group, centers: list[str]) -> dict[str, Stat]:
    """Per-center BWT over seeds; a run contributes to the centers it trained on."""
    values: dict[str, list[float]] = {c: [] for c in centers}
    for summary in group.summaries:
        for center, value in summary.per_center_bwt.items():
            values[center].append(value)
    return {c: Stat.of(v) for c, v in values.items()}


def _zero_shot(group: Group) -> list[Stat]:
    """Zero-shot mean score after 1, 2, ... domains seen, over the seeds that reached that stage."""
    curves = [s.zero_shot for s in group.summaries]
    stages = max(len(c) for c in curves)
    return [Stat.of(c[k] for c in curves if k < len(c)) for k in range(stages)]


def _per_order(groups: list[Group]) -> dict[tuple[str, ...], OrderPanel]:
    """Zero-shot curves per distinct training order (mean over the runs that share it), per strategy."""
    out: dict[tuple[str, ...], OrderPanel] = {}
    for group in groups:
        by_order: dict[tuple[str, ...], list[tuple[int, list[float]]]] = {}
        for run, summary in zip(group.runs, group.summaries, strict=True):
            by_order.setdefault(tuple(run.rmatrix.order), []).append((run.seed, summary.zero_shot))
        for order, seeded in by_order.items():
            panel = out.setdefault(order, OrderPanel([], {}))
            panel.seeds.extend(seed for seed, _ in seeded if seed not in panel.seeds)
            curves = [curve for _, curve in seeded]
            panel.curves[group.strategy] = [float(v) for v in np.nanmean(curves, axis=0)]
    return dict(sorted(out.items(), key=lambda item: min(item[1].seeds)))


def _heatmap(group: Group, metric: str) -> Heatmap | None:
    order = group.fixed_order
    if order is None:
        return None
    stack = np.stack([run.rmatrix.aligned(order, metric) for run in group.runs])
    std = stack.std(axis=0, ddof=1) if len(stack) > 1 else np.full(stack.shape[1:], np.nan)
    return Heatmap(order, stack.mean(axis=0), std, len(stack))


def _costs(runs: list[ParentRun]) -> dict[str, Stat]:
    found = {m: [r.metrics[m] for r in runs if m in r.metrics] for m in COST_METRICS}
    return {m: Stat.of(v) for m, v in found.items() if v}


def _notes(
    keyed: dict[RunKey, list[ParentRun]],
    centers: list[str],
    runs: Sequence[ParentRun],
    metrics: list[MetricInfo],
) -> list[str]:
    notes = []
    single = ", ".join(f"{strategy} ({kind})" for (strategy, kind), rs in keyed.items() if len(rs) == 1)
    if single:
        notes.append(f"One seed only for {single}: no spread, interval or test is shown for it.")
    partial = sorted({r.name for r in runs if set(r.rmatrix.centers) != set(centers)})
    if partial:
        notes.append(f"Runs tested on fewer centers (missing scores left out): {', '.join(partial)}.")
    for info in metrics:
        lacking = sorted(r.name for r in runs if info.name not in r.rmatrix.metrics)
        if lacking:
            notes.append(
                f"No {info.title} scores in {counted(len(lacking), 'run')} "
                f"({', '.join(lacking)}): left out of the {info.title} tables and figures only."
            )
    return notes


def slug(name: str) -> str:
    """``name`` with every run of characters unsafe in a file name replaced by ``_``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
