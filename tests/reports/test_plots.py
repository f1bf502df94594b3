"""Figures are valid PNG files of the expected pixel size, labelled and scaled by their metric."""

from __future__ import annotations

import pytest
from matplotlib.figure import Figure
from PIL import Image
from report_cases import VOLUME, parent, rmatrix, table1_runs

from mscl.metrics.volume import AbsoluteVolumeDifference
from mscl.reports import plots
from mscl.reports.compile import compile_runs
from mscl.tracking.rmatrix import MetricMatrix, RMatrix

STRATEGIES = ("finetune", "replay")


def pixels(size: tuple[float, float]) -> tuple[int, int]:
    return round(size[0] * plots.DPI), round(size[1] * plots.DPI)


@pytest.fixture(scope="module")
def compiled():
    joint = rmatrix("joint", 0, ["joint"], ["A"], [[0.45]], kind="joint")
    runs = [parent(rm) for s in STRATEGIES for rm in table1_runs(s)[:3]] + [parent(joint)]
    return compile_runs(runs)


def check_png(path, size: tuple[int, int]) -> None:
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == size


@pytest.mark.parametrize("metric", ["dice", VOLUME])
def test_zero_shot_and_bwt_bars(compiled, tmp_path, metric) -> None:
    report, colors = compiled.metrics[metric], plots.palette(["finetune", "joint", "replay"])
    section = report.sections[0]
    check_png(
        plots.zero_shot_plot(section, report.references, colors, tmp_path / "z.png"),
        pixels(plots.CURVE_SIZE),
    )
    check_png(plots.bwt_bars(section, compiled.centers, colors, tmp_path / "b.png"), pixels(plots.BAR_SIZE))


def test_small_multiples_one_panel_per_order(compiled, tmp_path) -> None:
    colors = plots.palette(list(STRATEGIES))
    report = compiled.headline
    path = plots.per_order_plot(report.sections[0], report.references, colors, tmp_path / "p.png")
    check_png(path, pixels(plots.PANEL_SIZE))  # one fixed order: one panel


def test_heatmap_has_a_std_panel_only_with_several_seeds(compiled, tmp_path) -> None:
    info = compiled.headline.info
    heatmap = compiled.headline.sections[0].heatmaps["replay"]
    width, height = plots.HEATMAP_PANEL
    check_png(
        plots.heatmap_plot("replay", heatmap, "descending", info, tmp_path / "h.png"),
        pixels((2 * width, height)),
    )
    one = compile_runs([parent(table1_runs("replay")[0])]).headline.sections[0].heatmaps["replay"]
    check_png(
        plots.heatmap_plot("replay", one, "descending", info, tmp_path / "h1.png"), pixels((width, height))
    )


def test_axes_name_the_metric_and_only_a_bounded_one_is_clamped(compiled, tmp_path, monkeypatch) -> None:
    figures: list[Figure] = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig) or path)
    colors = plots.palette(["finetune", "joint", "replay"])
    for metric in ("dice", VOLUME):
        report = compiled.metrics[metric]
        plots.zero_shot_plot(report.sections[0], report.references, colors, tmp_path / "z.png")
        plots.per_order_plot(report.sections[0], report.references, colors, tmp_path / "p.png")
        heatmap = report.sections[0].heatmaps["replay"]
        plots.heatmap_plot("replay", heatmap, "descending", report.info, tmp_path / "h.png")
    dice_curve, dice_panels, dice_heatmap, volume_curve, volume_panels, volume_heatmap = figures
    assert "Dice" in dice_curve.axes[0].get_ylabel()
    assert dice_curve.axes[0].get_ylim() == (0.0, 1.0) and dice_panels.axes[0].get_ylim() == (0.0, 1.0)
    assert AbsoluteVolumeDifference.title in volume_curve.axes[0].get_ylabel()
    assert AbsoluteVolumeDifference.title in volume_panels.axes[0].get_ylabel()
    low, high = volume_curve.axes[0].get_ylim()
    assert high > 1.0 and low > 1.0  # every zero-shot volume lies in [14, 17] ml: not clamped to [0, 1]
    assert dice_heatmap.axes[0].images[0].get_clim() == (0.0, 1.0)
    vmin, vmax = volume_heatmap.axes[0].images[0].get_clim()
    assert vmin == 0.0 and vmax == pytest.approx(float(heatmap.mean.max()))


LONG_METRIC = "a_plugin_metric_named_by_its_registry_key_as_it_is_not_installed"
LONG_STRATEGIES = ("finetune_with_a_long_descriptive_name", "replay_with_twenty_cases_per_center_kept")


def inside(fig: Figure, artist) -> bool:
    """Whether ``artist`` lies within ``fig``: nothing of it is clipped."""
    box = artist.get_window_extent()
    return box.x0 >= 0 and box.y0 >= 0 and box.x1 <= fig.bbox.width and box.y1 <= fig.bbox.height


def test_titles_and_legend_fit_the_figure_with_long_names(tmp_path, monkeypatch) -> None:
    order = ["Milano-Niguarda-Neuroimaging", "Karolinska-Stockholm"]
    matrix = MetricMatrix(higher_is_better=True, bounds=(0.0, 1.0), matrix=[[0.5, 0.3], [0.4, 0.6]])
    runs = [
        parent(RMatrix(strategy=s, seed=0, order=order, centers=order, metrics={LONG_METRIC: matrix}))
        for s in LONG_STRATEGIES
    ]
    section = compile_runs(runs).headline.sections[0]
    colors, heatmap = plots.palette(list(LONG_STRATEGIES)), section.heatmaps[LONG_STRATEGIES[1]]
    figures: list[Figure] = []
    save = plots._save
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig) or save(fig, path))
    check_png(plots.per_order_plot(section, {}, colors, tmp_path / "p.png"), pixels(plots.PANEL_SIZE))
    plots.zero_shot_plot(section, {}, colors, tmp_path / "z.png")
    plots.bwt_bars(section, order, colors, tmp_path / "b.png")
    plots.heatmap_plot(LONG_STRATEGIES[1], heatmap, "descending", section.metric, tmp_path / "h.png")
    panels, curve, bars, shown = figures
    assert "".join(panels.get_suptitle().split()).startswith(f"Zero-shot{LONG_METRIC}perdomain")
    assert inside(panels, panels._suptitle) and inside(panels, panels.legends[0])
    assert inside(shown, shown._suptitle)
    for fig in (panels, curve, bars):
        assert inside(fig, fig.axes[0].title)


def test_heatmap_titles_say_what_is_shown(compiled, tmp_path, monkeypatch) -> None:
    figures: list[Figure] = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig) or path)
    info = compiled.headline.info
    three = compiled.headline.sections[0].heatmaps["replay"]
    one = compile_runs([parent(table1_runs("replay")[0])]).headline.sections[0].heatmaps["replay"]
    for heatmap in (three, one):
        plots.heatmap_plot("replay", heatmap, "descending", info, tmp_path / "h.png")
    assert [ax.get_title() for ax in figures[0].axes[:2]] == ["mean over 3 seeds", "std over 3 seeds"]
    assert figures[1].axes[0].get_title() == "values of 1 seed"
    assert plots.heatmap_content(three) == "mean (left) and std (right) over 3 seeds"
    assert plots.heatmap_content(one) == "values of 1 seed"
