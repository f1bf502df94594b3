"""Compile the R matrices of many (strategy, seed) runs into the numbers a report shows.

Runs are grouped by strategy and order kind (``descending``, ``random``, ``custom``). Every matrix is read
in canonical center columns, so per-center numbers line up whatever the training order. Continual metrics
come from :mod:`mscl.protocol.metrics`; statistics over seeds from :mod:`mscl.reports.stats`.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from mscl.protocol import metrics as cl
from mscl.reports.stats import PairedTest, Stat, paired_test
from mscl.tracking.queries import ParentRun
from mscl.tracking.rmatrix import SEQUENTIAL_KINDS

ORDER_KINDS = ("descending", "random", "custom")
SUMMARY_METRICS = ("acc", "bwt", "fwt", "forgetting")
COST_METRICS = ("wall_time_s", "gpu_hours", "peak_memory_mb", "replay_memory_bytes")
PAIRED_METRICS = ("acc", "bwt")


@dataclass(frozen=True)
class Group:
    """The runs of one strategy under one order kind."""

    strategy: str
    order_kind: str
    runs: list[ParentRun]

    @property
    def fixed_order(self) -> list[str] | None:
        """The training order shared by every run, or None when the runs differ."""
        orders = {tuple(run.rmatrix.order) for run in self.runs}
        return list(orders.pop()) if len(orders) == 1 else None

    def per_seed(self, metric: str) -> dict[int, float]:
        """``metric`` of every run, by seed (see :func:`run_metrics`)."""
        return {run.seed: run_metrics(run)[metric] for run in self.runs}


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
    """Everything about the continual strategies trained under one order kind."""

    order_kind: str
    groups: list[Group]
    per_center_bwt: dict[str, dict[str, Stat]]
    summary: dict[str, dict[str, Stat]]
    zero_shot: dict[str, list[Stat]]
    per_order: dict[tuple[str, ...], OrderPanel]
    heatmaps: dict[str, Heatmap]
    tests: list[PairedTest]


@dataclass
class Compiled:
    """The whole report's numbers."""

    centers: list[str]
    sections: list[Section]
    references: dict[str, Stat]
    costs: dict[tuple[str, str], dict[str, Stat]]
    notes: list[str] = field(default_factory=list)


def run_metrics(run: ParentRun) -> dict[str, float]:
    """ACC, BWT, FWT and forgetting of a continual run (FWT is NaN without a baseline row)."""
    rm = run.rmatrix
    r, order, centers, base = rm.r, rm.order, rm.centers, rm.baseline_row
    return {
        "acc": cl.acc(r),
        "bwt": cl.bwt(r, order, centers),
        "fwt": cl.fwt(r, order, centers, base) if base is not None else float("nan"),
        "forgetting": cl.forgetting(r, order, centers),
    }


def reference_dice(run: ParentRun) -> float:
    """A reference run's zero-shot mean Dice.

    ``single``: mean over the single-center models of each model's mean Dice over all centers;
    ``joint``: mean Dice of the pooled model over all centers.
    """
    return float(np.nanmean(cl.zero_shot_means(run.rmatrix.r)))


def canonical_centers(runs: Sequence[ParentRun]) -> list[str]:
    """Center order for tables: the descending training order if one ran, else the runs' columns."""
    seen: list[str] = []
    descending = [r.rmatrix.order for r in runs if r.order_kind == "descending" and _sequential(r)]
    for names in [*descending[:1], *(r.rmatrix.centers for r in runs)]:
        seen += [c for c in names if c not in seen]
    return seen


def compile_runs(runs: Sequence[ParentRun]) -> Compiled:
    """Group ``runs`` and compute every table's and plot's numbers."""
    centers = canonical_centers(runs)
    groups = _groups(runs)
    sequential = [g for g in groups if _sequential(g.runs[0])]
    sections = [
        _section(kind, [g for g in sequential if g.order_kind == kind], centers)
        for kind in ORDER_KINDS
        if any(g.order_kind == kind for g in sequential)
    ]
    references = {
        g.strategy: Stat.of(reference_dice(r) for r in g.runs) for g in groups if not _sequential(g.runs[0])
    }
    costs = {(g.strategy, g.order_kind): _costs(g) for g in groups}
    compiled = Compiled(centers, sections, references, {k: v for k, v in costs.items() if v})
    compiled.notes += _notes(groups, centers, runs)
    return compiled


def _sequential(run: ParentRun) -> bool:
    return run.rmatrix.kind in SEQUENTIAL_KINDS


def _groups(runs: Sequence[ParentRun]) -> list[Group]:
    """One group per (strategy, order kind); references are one group per strategy (order does not matter)."""
    keyed: dict[tuple[str, str], list[ParentRun]] = {}
    for run in runs:
        kind = run.order_kind if _sequential(run) else "reference"
        keyed.setdefault((run.strategy, kind), []).append(run)
    return [Group(s, k, sorted(rs, key=lambda r: r.seed)) for (s, k), rs in sorted(keyed.items())]


def _section(order_kind: str, groups: list[Group], centers: list[str]) -> Section:
    return Section(
        order_kind=order_kind,
        groups=groups,
        per_center_bwt={g.strategy: _per_center_bwt(g, centers) for g in groups},
        summary={g.strategy: {m: Stat.of(g.per_seed(m).values()) for m in SUMMARY_METRICS} for g in groups},
        zero_shot={g.strategy: _zero_shot(g, centers) for g in groups},
        per_order=_per_order(groups, centers),
        heatmaps={g.strategy: h for g in groups if (h := _heatmap(g)) is not None},
        tests=[
            paired_test(m, a.strategy, b.strategy, a.per_seed(m), b.per_seed(m))
            for a, b in itertools.combinations(groups, 2)
            for m in PAIRED_METRICS
        ],
    )


def _per_center_bwt(group: Group, centers: list[str]) -> dict[str, Stat]:
    """Per-center BWT over seeds; a run contributes to the centers it trained on."""
    values: dict[str, list[float]] = {c: [] for c in centers}
    for run in group.runs:
        rm = run.rmatrix
        for center, value in cl.per_center_bwt(rm.r, rm.order, rm.centers).items():
            values[center].append(value)
    return {c: Stat.of(v) for c, v in values.items()}


def _zero_shot_rows(run: ParentRun, centers: list[str]) -> list[float]:
    return cl.zero_shot_means(run.rmatrix.aligned(centers))


def _zero_shot(group: Group, centers: list[str]) -> list[Stat]:
    """Zero-shot mean Dice after 1, 2, ... domains seen, over the seeds that reached that stage."""
    curves = [_zero_shot_rows(run, centers) for run in group.runs]
    stages = max(len(c) for c in curves)
    return [Stat.of(c[k] for c in curves if k < len(c)) for k in range(stages)]


def _per_order(groups: list[Group], centers: list[str]) -> dict[tuple[str, ...], OrderPanel]:
    """Zero-shot curves per distinct training order (mean over the runs that share it), per strategy."""
    out: dict[tuple[str, ...], OrderPanel] = {}
    for group in groups:
        by_order: dict[tuple[str, ...], list[ParentRun]] = {}
        for run in group.runs:
            by_order.setdefault(tuple(run.rmatrix.order), []).append(run)
        for order, runs in by_order.items():
            panel = out.setdefault(order, OrderPanel([], {}))
            panel.seeds.extend(r.seed for r in runs if r.seed not in panel.seeds)
            curves = [_zero_shot_rows(r, centers) for r in runs]
            panel.curves[group.strategy] = [float(v) for v in np.nanmean(curves, axis=0)]
    return dict(sorted(out.items(), key=lambda item: min(item[1].seeds)))


def _heatmap(group: Group) -> Heatmap | None:
    order = group.fixed_order
    if order is None:
        return None
    stack = np.stack([run.rmatrix.aligned(order) for run in group.runs])
    std = stack.std(axis=0, ddof=1) if len(stack) > 1 else np.full(stack.shape[1:], np.nan)
    return Heatmap(order, stack.mean(axis=0), std, len(stack))


def _costs(group: Group) -> dict[str, Stat]:
    found = {m: [r.metrics[m] for r in group.runs if m in r.metrics] for m in COST_METRICS}
    return {m: Stat.of(v) for m, v in found.items() if v}


def _notes(groups: list[Group], centers: list[str], runs: Sequence[ParentRun]) -> list[str]:
    notes = []
    if any(len(g.runs) == 1 for g in groups):
        single = ", ".join(f"{g.strategy} ({g.order_kind})" for g in groups if len(g.runs) == 1)
        notes.append(f"One seed only for {single}: no spread, interval or test is shown for it.")
    partial = sorted({r.name for r in runs if set(r.rmatrix.centers) != set(centers)})
    if partial:
        notes.append(f"Runs tested on fewer centers (missing scores left out): {', '.join(partial)}.")
    return notes
