"""The steps after resampling, shared by real and synthetic cases: foreground crop, then normalisation.

Plain tensor code with no TorchIO import, so the synthetic generator (whose volumes are born in RAS at the
target spacing) needs neither TorchIO nor SimpleITK. The results equal TorchIO's ``Crop``,
``ZNormalization`` and ``RescaleIntensity`` with a foreground mask (tested against them).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from mscl.config import DataConfig, Normalization
from mscl.data.manifest import PreprocessingRecord
from mscl.errors import DataError

FOREGROUND_PERCENTILES: tuple[float, float] = (1.0, 99.0)
FOREGROUND_FRACTION = 0.05
"""Foreground: image above ``p_low + FOREGROUND_FRACTION * (p_high - p_low)`` (or label > 0)."""
RESCALE_PERCENTILES: tuple[float, float] = (0.5, 99.5)
"""``percentile`` normalisation maps these foreground percentiles to [0, 1] and clips outside."""


Box = tuple[slice, slice, slice]
"""The crop of a volume: one slice per axis."""


def standardize(
    image: torch.Tensor,
    label: torch.Tensor,
    spacing: Sequence[float],
    crop_margin_mm: float,
    normalization: Normalization,
) -> tuple[np.ndarray, np.ndarray]:
    """Crop a 3D pair to its foreground plus a margin, normalise the image, clip the label to [0, 1]
    (:func:`standardize_with_box` without the box)."""
    image_out, label_out, _ = standardize_with_box(image, label, spacing, crop_margin_mm, normalization)
    return image_out, label_out


def standardize_with_box(
    image: torch.Tensor,
    label: torch.Tensor,
    spacing: Sequence[float],
    crop_margin_mm: float,
    normalization: Normalization,
) -> tuple[np.ndarray, np.ndarray, Box]:
    """:func:`standardize`, also returning the crop box (in the input's voxels), so it can be inverted.

    Args:
        image: 3D intensities.
        label: 3D soft label on the same grid.
        spacing: Voxel size in mm per axis (turns the margin into voxels).
        crop_margin_mm: Margin kept around the foreground's bounding box.
        normalization: ``zscore`` or ``percentile`` (see :func:`normalize_intensity`).

    Returns:
        float32 ``(image, label)`` arrays and the box they were cropped to.

    Raises:
        DataError: the image has no foreground or is constant over it.
    """
    image, label = image.float(), label.float()
    foreground = foreground_mask(image, label)
    if not foreground.any() or image[foreground].std(correction=0) == 0:
        raise DataError("no foreground (the image is constant over it)")
    margin = [math.ceil(crop_margin_mm / s) for s in spacing]
    box = bounding_box(foreground, margin)
    image, label, foreground = image[box], label[box], foreground[box]
    return normalize_intensity(image, foreground, normalization).numpy(), label.clamp(0, 1).numpy(), box


def foreground_mask(image: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """Boolean mask of the head: image above a low robust threshold, or any lesion."""
    low, high = np.percentile(image.numpy(), FOREGROUND_PERCENTILES)
    threshold = low + FOREGROUND_FRACTION * (high - low)
    return (image > threshold) | (label > 0)


def bounding_box(mask: torch.Tensor, margin: Sequence[int]) -> Box:
    """Slices keeping ``mask``'s bounding box plus ``margin`` voxels per axis, within the volume."""
    box = []
    for axis in range(3):
        others = tuple(a for a in range(3) if a != axis)
        hits = torch.nonzero(mask.any(dim=others)).flatten()
        first, last = int(hits[0]), int(hits[-1])
        box.append(slice(max(0, first - margin[axis]), min(mask.shape[axis], last + 1 + margin[axis])))
    return box[0], box[1], box[2]


def normalize_intensity(image: torch.Tensor, foreground: torch.Tensor, kind: Normalization) -> torch.Tensor:
    """One normalisation of the whole volume, its statistics taken over the foreground.

    ``zscore``: ``(x - mean) / std`` (sample standard deviation). ``percentile``: the foreground's
    :data:`RESCALE_PERCENTILES` mapped to [0, 1], values outside clipped.
    """
    values = image[foreground]
    if kind == "zscore":
        return (image - values.mean()) / values.std()
    low, high = (float(p) for p in np.percentile(values.numpy(), RESCALE_PERCENTILES))
    clipped = image.clamp(low, high)
    low_t, high_t = clipped.min(), clipped.max()  # the cut-offs as stored, so the ends map exactly
    if high_t <= low_t:
        raise DataError(f"foreground percentiles {RESCALE_PERCENTILES} coincide: nothing to rescale")
    return (clipped - low_t) / (high_t - low_t)


def preprocessing_record(data: DataConfig) -> PreprocessingRecord:
    """How every volume is resampled, cropped and normalised, for ``dataset.json`` (real and synthetic)."""
    low, high = FOREGROUND_PERCENTILES
    intensity = {
        "zscore": "zscore: (x - mean) / std over the foreground, applied to the whole volume",
        "percentile": (
            f"percentile: foreground p{RESCALE_PERCENTILES[0]:g}..p{RESCALE_PERCENTILES[1]:g} mapped to "
            "[0, 1], clipped"
        ),
    }[data.normalization]
    return PreprocessingRecord(
        spacing=data.spacing,
        crop=(
            f"foreground bounding box + {data.crop_margin_mm:g} mm; foreground = image > p{low:g} + "
            f"{FOREGROUND_FRACTION:g} * (p{high:g} - p{low:g}), or label > 0"
        ),
        intensity_normalization=intensity,
    )
