"""The per-domain intensity figure of a dataset directory."""

from __future__ import annotations

from pathlib import Path

from mscl.data.synthetic.figures import plot_center_intensities

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_plot_center_intensities_writes_a_png(tiny_dataset: Path, tmp_path: Path) -> None:
    path = plot_center_intensities(tiny_dataset, tmp_path / "intensities.png")
    assert path == tmp_path / "intensities.png"
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 10_000
