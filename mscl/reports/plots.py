"""The report's figures as PNG files.

Figures are built with :class:`matplotlib.figure.Figure` directly (Agg canvas, no pyplot state), at a fixed
size and resolution so that every file has a known pixel size. Every figure shows the metric of its section:
the y axis names it (with its unit), and only a bounded metric gets fixed y limits (its bounds).
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from matplotlib.text import Text
from matplotlib.typing import ColorType

from mscl.reports.compile import Heatmap, MetricInfo, Section
from mscl.reports.stats import Stat
from mscl.reports.tables import metric_number
from mscl.words import counted

DPI = 100
CURVE_SIZE = (8.0, 5.0)
BAR_SIZE = (9.0, 5.0)
PANEL_SIZE = (4.0, 3.2)
HEATMAP_PANEL = (6.0, 5.5)
MAX_PANELS = 12
MAX_PANEL_COLUMNS = 3
Palette = Mapping[str, ColorType]
"""A color per strategy name."""
REFERENCE_STYLES = {"single": ("single-domain", "tab:gray"), "joint": ("joint (pooled)", "black")}
TITLE_SHARE = 0.9
"""How much of its figure's (or panel's) width a title may span before it wraps onto another line."""
MAX_LEGEND_COLUMNS = 4


def palette(strategies: list[str]) -> dict[str, ColorType]:
    """One stable color per strategy name (tab10 in sorted order)."""
    cmap = colormaps["tab10"]
    return {s: cmap(i % 10) for i, s in enumerate(sorted(strategies))}


def _figure(size: tuple[float, float]) -> Figure:
    """A constrained-layout figure on an Agg canvas (which measures text for :func:`_fit`)."""
    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=DPI, format="png")
    return path


def _share(fig: Figure, artist: Artist) -> float:
    """The share of ``fig``'s width that ``artist`` spans."""
    return float(artist.get_window_extent().width / fig.bbox.width)


def _fit(fig: Figure, text: Text, share: float = TITLE_SHARE) -> None:
    """Wrap the title ``text`` onto as many lines as keep it within ``share`` of ``fig``'s width.

    Long words (a metric or strategy name) are broken too, so no title is clipped.
    """
    words = text.get_text()
    chars = len(words)
    while chars > 1 and _share(fig, text) > share:
        chars = min(chars - 1, int(chars * share / _share(fig, text)))
        text.set_text(textwrap.fill(words, max(chars, 1)))


def _legend(fig: Figure, axes: Axes) -> Legend:
    """``axes``' legend below the panels, in as many columns (up to 4) as fit the figure's width."""
    handles, labels = axes.get_legend_handles_labels()
    for ncols in range(min(len(labels), MAX_LEGEND_COLUMNS), 1, -1):
        legend = fig.legend(handles, labels, loc="outside lower center", ncols=ncols, fontsize=8)
        if _share(fig, legend) <= 1.0:
            return legend
        legend.remove()
    return fig.legend(handles, labels, loc="outside lower center", fontsize=8)


def _references(ax: Axes, references: Mapping[str, Stat], info: MetricInfo) -> None:
    number = metric_number(info)
    for name, stat in references.items():
        label, color = REFERENCE_STYLES.get(name, (name, "tab:brown"))
        ax.axhline(
            stat.mean, linestyle="--", color=color, linewidth=1.2, label=f"{label} ({number(stat.mean)})"
        )


def _bounds(ax: Axes, info: MetricInfo) -> None:
    low, high = info.bounds
    if high is not None:
        ax.set_ylim(low, high)


def zero_shot_plot(section: Section, references: Mapping[str, Stat], colors: Palette, path: Path) -> Path:
    """Figure 2: zero-shot mean score versus domains seen, a ± std band per strategy, dashed references."""
    info = section.metric
    fig = _figure(CURVE_SIZE)
    ax = fig.add_subplot()
    for strategy, stats in section.zero_shot.items():
        x = np.arange(1, len(stats) + 1)
        mean = np.array([s.mean for s in stats])
        std = np.nan_to_num(np.array([s.std for s in stats]))
        seeds = max(s.n for s in stats)
        ax.plot(x, mean, marker="o", color=colors[strategy], label=f"{strategy} (n={seeds})")
        ax.fill_between(x, mean - std, mean + std, color=colors[strategy], alpha=0.2, linewidth=0)
    _references(ax, references, info)
    _bounds(ax, info)
    ax.set_xticks(np.arange(1, max(len(s) for s in section.zero_shot.values()) + 1))
    ax.set_xlabel("number of domains (centers) seen")
    ax.set_ylabel(f"zero-shot mean test {info.label} over all centers")
    _fit(
        fig,
        ax.set_title(
            f"Zero-shot {info.title} vs domains seen, {section.order_kind} order (mean ± std over seeds)"
        ),
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    return _save(fig, path)


def per_order_plot(section: Section, references: Mapping[str, Stat], colors: Palette, path: Path) -> Path:
    """Figure 4: one small panel per distinct training order, x ticks naming the center added."""
    info = section.metric
    panels = list(section.per_order.items())[:MAX_PANELS]
    cols = min(MAX_PANEL_COLUMNS, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig = _figure((PANEL_SIZE[0] * cols, PANEL_SIZE[1] * rows))
    axes = fig.subplots(rows, cols, squeeze=False, sharey=True)
    for ax, (order, panel) in zip(axes.flat, panels, strict=False):
        for strategy, curve in panel.curves.items():
            ax.plot(np.arange(1, len(curve) + 1), curve, marker=".", color=colors[strategy], label=strategy)
        _references(ax, references, info)
        _bounds(ax, info)
        ax.set_xticks(np.arange(1, len(order) + 1), order, rotation=45, fontsize=7)
        _fit(fig, ax.set_title(f"seed {', '.join(map(str, panel.seeds))}", fontsize=9), TITLE_SHARE / cols)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel(f"zero-shot {info.label}")
    _legend(fig, axes.flat[0])
    _fit(
        fig,
        fig.suptitle(
            f"Zero-shot {info.title} per domain sequence ({section.order_kind} order; x: center added)"
        ),
    )
    return _save(fig, path)


def heatmap_content(heatmap: Heatmap) -> str:
    """What :func:`heatmap_plot` shows: ``values of 1 seed``, ``mean (left) and std (right) over 3 seeds``."""
    seeds = counted(heatmap.n, "seed")
    return f"mean (left) and std (right) over {seeds}" if heatmap.n > 1 else f"values of {seeds}"


def heatmap_plot(strategy: str, heatmap: Heatmap, order_kind: str, info: MetricInfo, path: Path) -> Path:
    """Figure 5: R mean and std over seeds (the values alone for one seed) with the value in every cell.

    The mean's color scale spans the metric's bounds, or its lower bound to the largest mean if unbounded.
    """
    seeds = counted(heatmap.n, "seed")
    low, high = info.bounds
    top = high if high is not None else max(float(np.nanmax(heatmap.mean)), low + 1e-3)
    panels = [(f"values of {seeds}", info.label, heatmap.mean, "viridis", low, top)]
    if heatmap.n > 1:
        spread = max(float(np.nanmax(heatmap.std)), 1e-3)
        panels = [
            (f"mean over {seeds}", f"{info.label}, mean", heatmap.mean, "viridis", low, top),
            (f"std over {seeds}", f"{info.label}, std", heatmap.std, "magma", 0.0, spread),
        ]
    fig = _figure((HEATMAP_PANEL[0] * len(panels), HEATMAP_PANEL[1]))
    for ax, (title, label, values, cmap, vmin, vmax) in zip(
        fig.subplots(1, len(panels), squeeze=False).flat, panels, strict=True
    ):
        image = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax)
        _annotate(ax, values, vmin, vmax)
        k = len(heatmap.order)
        ax.set_xticks(np.arange(k), heatmap.order, rotation=45, fontsize=8)
        ax.set_yticks(
            np.arange(values.shape[0]), [f"{i + 1}: {c}" for i, c in enumerate(heatmap.order)], fontsize=8
        )
        ax.set_xlabel("test center")
        ax.set_ylabel("after training stage")
        _fit(fig, ax.set_title(title), TITLE_SHARE / len(panels))
        fig.colorbar(image, ax=ax, shrink=0.8, label=label)
    _fit(fig, fig.suptitle(f"R matrix of {strategy}, {info.title}, {order_kind} order"))
    return _save(fig, path)


def _annotate(ax: Axes, values: np.ndarray, vmin: float, vmax: float) -> None:
    for (i, j), v in np.ndenumerate(values):
        if not math.isnan(v):
            color = "black" if v > vmin + 0.6 * (vmax - vmin) else "white"
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color=color)


def bwt_bars(section: Section, centers: list[str], colors: Palette, path: Path) -> Path:
    """Per-center BWT as grouped bars, one bar per strategy, error bars = std over seeds (sign-aware)."""
    info = section.metric
    strategies = list(section.per_center_bwt)
    shown = [c for c in centers if any(section.per_center_bwt[s][c].n for s in strategies)]
    fig = _figure(BAR_SIZE)
    ax = fig.add_subplot()
    width = 0.8 / len(strategies)
    x = np.arange(len(shown))
    for i, strategy in enumerate(strategies):
        stats = [section.per_center_bwt[strategy][c] for c in shown]
        ax.bar(
            x + (i - (len(strategies) - 1) / 2) * width,
            [s.mean for s in stats],
            width,
            yerr=np.nan_to_num([s.std for s in stats]),
            capsize=3,
            color=colors[strategy],
            label=strategy,
        )
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xticks(x, shown, rotation=30)
    ax.set_xlabel("center (training order)" if section.order_kind == "descending" else "center")
    change = f"{info.label} difference" if info.higher_is_better else f"-Δ {info.label}, + = better"
    ax.set_ylabel(f"per-center BWT ({change})")
    _fit(
        fig, ax.set_title(f"Per-center {info.title} BWT, {section.order_kind} order (mean ± std over seeds)")
    )
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)
