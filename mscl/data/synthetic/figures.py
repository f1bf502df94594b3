"""Figures of a prepared dataset for docs/synthetic.md (matplotlib, Agg backend, imported when plotting).

Works on any dataset directory (real or synthetic): where lesions and brain lie on each (center, contrast).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mscl.data.dataset import PreparedDataset
from mscl.data.shift import brain_mask, domains_of, feature_range

if TYPE_CHECKING:
    from matplotlib.axes import Axes

HISTOGRAM_BINS = 88
"""Histogram bins over the dataset's feature range (:func:`mscl.data.shift.feature_range`)."""


def plot_center_intensities(directory: Path, path: Path, log: bool = True) -> Path:
    """One row per (center, contrast): left, the slice with the most lesion near the middle of the domain's
    first case, lesion outline (label 0.5) in red; right, the intensity densities of brain voxels
    (``label < 0.5``) and lesion voxels (``label >= 0.5``), pooled over all the domain's cases, values
    outside the range clipped to its ends; ``log``: logarithmic density axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with PreparedDataset(directory) as dataset:
        manifest = dataset.manifest
        domains = domains_of(manifest)
        low, high = feature_range(manifest)
        edges = np.linspace(low, high, HISTOGRAM_BINS + 1)
        fig, axes = plt.subplots(
            len(domains),
            2,
            figsize=(7.5, 1.9 * len(domains)),
            squeeze=False,
            gridspec_kw={"width_ratios": [1, 2.4]},
        )
        for (slice_ax, hist_ax), domain in zip(axes, domains, strict=True):
            cases = [c for c in manifest.cases if (c.center, c.contrast) == (domain.center, domain.contrast)]
            brain_counts = np.zeros(HISTOGRAM_BINS)
            lesion_counts = np.zeros(HISTOGRAM_BINS)
            for index, case in enumerate(cases):
                image, label = (a.astype(np.float32) for a in dataset.load(case.id))
                lesion = label >= 0.5
                brain_counts += np.histogram(np.clip(image[brain_mask(image) & ~lesion], low, high), edges)[0]
                lesion_counts += np.histogram(np.clip(image[lesion], low, high), edges)[0]
                if index == 0:
                    _show_slice(slice_ax, image, label)
            slice_ax.set_title(f"{domain.name} ({len(cases)} cases)", fontsize=9)
            slice_ax.axis("off")
            for counts, name, color in (
                (brain_counts, "brain (label < 0.5)", "0.4"),
                (lesion_counts, "lesion (label >= 0.5)", "red"),
            ):
                if counts.sum() > 0:
                    density = counts / (counts.sum() * np.diff(edges))
                    hist_ax.stairs(density, edges, color=color, label=name)
            if log:
                hist_ax.set_yscale("log")
            hist_ax.set_xlim(low, high)
            hist_ax.tick_params(labelsize=7)
    axes[0][1].legend(fontsize=7)
    axes[-1][1].set_xlabel("normalised intensity (clipped to the shift check's range)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def _show_slice(ax: Axes, image: np.ndarray, label: np.ndarray) -> None:
    """The axial slice with the most lesion near the middle, grey levels from the brain's percentiles."""
    z = _lesion_slice(label)
    low, high = np.percentile(image[brain_mask(image)], (0.5, 99.8))
    ax.imshow(image[:, :, z].T, origin="lower", cmap="gray", vmin=low, vmax=high)
    if (label[:, :, z] >= 0.5).any():
        ax.contour(label[:, :, z].T, levels=[0.5], colors="red", linewidths=0.8)


def _lesion_slice(label: np.ndarray) -> int:
    """The axial slice with the most lesion near the middle of the brain (middle slice if none)."""
    middle = label.shape[2] // 2
    per_slice = (label >= 0.5).sum(axis=(0, 1)).astype(float)
    if not per_slice.any():
        return middle
    window = range(
        max(0, middle - label.shape[2] // 6), min(label.shape[2], middle + label.shape[2] // 6 + 1)
    )
    return max(window, key=lambda z: (per_slice[z], -abs(z - middle)))
