"""Figures of a synthetic dataset for docs/synthetic.md (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mscl.data.dataset import PreparedDataset
from mscl.data.manifest import CaseRecord
from mscl.data.synthetic.checks import THRESHOLD_GRID, dice_curve


def plot_centers(directory: Path, path: Path) -> Path:
    """A middle axial slice of the first case of every (center, contrast), lesion outline in red."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with PreparedDataset(directory) as dataset:
        firsts: dict[tuple[str, str], CaseRecord] = {}
        for case in dataset.manifest.cases:
            firsts.setdefault((case.center, case.contrast), case)
        fig, axes = plt.subplots(1, len(firsts), figsize=(2.2 * len(firsts), 2.8), squeeze=False)
        for ax, ((center, contrast), case) in zip(axes[0], firsts.items(), strict=True):
            image, label = (a.astype(np.float32) for a in dataset.load(case.id))
            z = _lesion_slice(label)
            low, high = np.percentile(image[image != image.flat[0]], (0.5, 99.8))
            ax.imshow(image[:, :, z].T, origin="lower", cmap="gray", vmin=low, vmax=high)
            ax.contour(label[:, :, z].T, levels=[0.5], colors="red", linewidths=0.8)
            ax.set_title(f"{center} {contrast}", fontsize=9)
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_threshold(directory: Path, path: Path, threshold: float) -> Path:
    """Mean Dice of ``image > t`` per (center, contrast) against ``t``, the fitted threshold marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves: dict[str, list[np.ndarray]] = {}
    with PreparedDataset(directory) as dataset:
        for case in dataset.manifest.cases:
            image, label = dataset.load(case.id)
            curves.setdefault(f"{case.center} {case.contrast}", []).append(dice_curve(image, label))
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for name, values in curves.items():
        ax.plot(THRESHOLD_GRID, np.mean(values, axis=0), label=name, ls="--" if "T2w" in name else "-")
    ax.axvline(threshold, color="black", lw=0.8)
    ax.set_xlabel("threshold on z-scored intensity")
    ax.set_ylabel("mean Dice (image > t vs label >= 0.5)")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


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
