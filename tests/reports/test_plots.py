"""Figures are valid PNG files of the expected pixel size."""

from __future__ import annotations

import pytest
from PIL import Image
from report_cases import parent, table1_runs

from mscl.reports import plots
from mscl.reports.compile import compile_runs
from mscl.tracking.rmatrix import RMatrix

STRATEGIES = ("finetune", "replay")


def pixels(size: tuple[float, float]) -> tuple[int, int]:
    return round(size[0] * plots.DPI), round(size[1] * plots.DPI)


@pytest.fixture(scope="module")
def compiled():
    joint = RMatrix(strategy="joint", kind="joint", seed=0, order=["joint"], centers=["A"], matrix=[[0.45]])
    runs = [parent(rm) for s in STRATEGIES for rm in table1_runs(s)[:3]] + [parent(joint)]
    return compile_runs(runs)


def check_png(path, size: tuple[int, int]) -> None:
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == size


def test_zero_shot_and_bwt_bars(compiled, tmp_path) -> None:
    section, colors = compiled.sections[0], plots.palette(["finetune", "joint", "replay"])
    check_png(
        plots.zero_shot_plot(section, compiled.references, colors, tmp_path / "z.png"),
        pixels(plots.CURVE_SIZE),
    )
    check_png(plots.bwt_bars(section, compiled.centers, colors, tmp_path / "b.png"), pixels(plots.BAR_SIZE))


def test_small_multiples_one_panel_per_order(compiled, tmp_path) -> None:
    colors = plots.palette(list(STRATEGIES))
    path = plots.per_order_plot(compiled.sections[0], compiled.references, colors, tmp_path / "p.png")
    check_png(path, pixels(plots.PANEL_SIZE))  # one fixed order: one panel


def test_heatmap_has_a_std_panel_only_with_several_seeds(compiled, tmp_path) -> None:
    heatmap = compiled.sections[0].heatmaps["replay"]
    width, height = plots.HEATMAP_PANEL
    check_png(
        plots.heatmap_plot("replay", heatmap, "descending", tmp_path / "h.png"), pixels((2 * width, height))
    )
    one = compile_runs([parent(table1_runs("replay")[0])]).sections[0].heatmaps["replay"]
    check_png(plots.heatmap_plot("replay", one, "descending", tmp_path / "h1.png"), pixels((width, height)))
