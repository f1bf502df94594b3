"""Preprocessing of one real image-label pair with TorchIO (nibabel reads the files).

Steps, in order: canonical RAS orientation, resampling to ``data.spacing`` (labels interpolated linearly so
they stay soft), crop to the foreground bounding box plus ``data.crop_margin_mm``, one intensity
normalisation over the whole volume, labels clipped to [0, 1]. The output is a :class:`PreparedCase`.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torchio as tio

from mscl.config import DataConfig
from mscl.data.manifest import PreprocessingRecord
from mscl.data.sources import SourceCase, check_pair, read_header, short_reason
from mscl.data.writer import PreparedCase
from mscl.errors import DataError

FOREGROUND_PERCENTILES: tuple[float, float] = (1.0, 99.0)
FOREGROUND_FRACTION = 0.05
"""Foreground: image above ``p_low + FOREGROUND_FRACTION * (p_high - p_low)`` (or label > 0)."""
RESCALE_PERCENTILES: tuple[float, float] = (0.5, 99.5)
"""``percentile`` normalisation maps these foreground percentiles to [0, 1] and clips outside."""


def preprocess_case(source: SourceCase, data: DataConfig) -> PreparedCase:
    """Read, check and preprocess one (subject, contrast) pair.

    Raises:
        DataError: naming the file that is unreadable, truncated, off its image's grid, holds NaN or
            infinite voxels, has label values outside [0, 1] beyond ``data.label_tolerance``, or has no
            foreground.
    """
    check_pair(source.image, source.label)
    image, affine = read_volume(source.image)
    label, _ = read_volume(source.label)
    check_label_range(label, source, data.label_tolerance)
    subject = tio.Subject(
        image=tio.ScalarImage(tensor=torch.from_numpy(image[None]), affine=affine),
        label=tio.LabelMap(tensor=torch.from_numpy(label[None]), affine=affine),
    )
    reorient_resample = tio.Compose(
        [tio.ToCanonical(copy=False), tio.Resample(data.spacing, label_interpolation="linear", copy=False)],
        copy=False,
    )
    subject = reorient_resample(subject)
    foreground = foreground_mask(subject.image.data, subject.label.data)
    if not foreground.any() or subject.image.data[foreground].std(correction=0) == 0:
        raise DataError(f"{source.image}: no foreground (the image is constant over it)")
    subject.add_image(tio.LabelMap(tensor=foreground, affine=subject.image.affine), "foreground")
    margin = [math.ceil(data.crop_margin_mm / s) for s in subject.image.spacing]
    crop_normalize = tio.Compose(
        [tio.Crop(crop_bounds(foreground[0], margin), copy=False), normalization(data.normalization)],
        copy=False,
    )
    subject = crop_normalize(subject)
    return PreparedCase(
        subject=source.subject,
        center=source.center,
        contrast=source.contrast,
        image=subject.image.data[0].numpy(),
        label=subject.label.data[0].clamp(0, 1).numpy(),
        spacing=tuple(float(s) for s in subject.image.spacing),  # type: ignore[arg-type]
        source_image=str(source.image),
        source_label=str(source.label),
    )


def read_volume(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Voxels (float32, 3D) and affine of a NIfTI file, refusing NaN or infinite voxels.

    Raises:
        DataError: when the file is missing, truncated or corrupt, or holds non-finite values.
    """
    header = read_header(path)
    try:
        array = np.asarray(header.get_fdata(dtype=np.float32))
    except Exception as exc:  # gzip, zlib, EOF and nibabel errors all mean a damaged file
        raise DataError(
            f"{path}: cannot read voxels, file truncated or corrupt ({short_reason(exc)})"
        ) from None
    array = array.reshape(array.shape[:3])
    bad = int(np.count_nonzero(~np.isfinite(array)))
    if bad:
        raise DataError(f"{path}: {bad} NaN or infinite voxel(s)")
    return array, header.affine


def check_label_range(label: np.ndarray, source: SourceCase, tolerance: float) -> None:
    """Refuse label values outside ``[-tolerance, 1 + tolerance]``.

    Raises:
        DataError: naming the label file and the offending extreme value.
    """
    low, high = float(label.min()), float(label.max())
    if low < -tolerance or high > 1 + tolerance:
        raise DataError(
            f"{source.label}: label values span [{low:g}, {high:g}], outside [0, 1] "
            f"beyond data.label_tolerance={tolerance:g}"
        )


def foreground_mask(image: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """Boolean mask of the head: image above a low robust threshold, or any lesion."""
    low, high = np.percentile(image.numpy(), FOREGROUND_PERCENTILES)
    threshold = low + FOREGROUND_FRACTION * (high - low)
    return (image > threshold) | (label > 0)


def crop_bounds(mask: torch.Tensor, margin: list[int]) -> tuple[int, ...]:
    """TorchIO ``Crop`` amounts ``(ini, fin)`` per axis keeping ``mask``'s bounding box plus ``margin``."""
    bounds: list[int] = []
    for axis in range(3):
        others = tuple(a for a in range(3) if a != axis)
        hits = torch.nonzero(mask.any(dim=others)).flatten()
        first, last = int(hits[0]), int(hits[-1])
        size = mask.shape[axis]
        bounds += [max(0, first - margin[axis]), max(0, size - 1 - last - margin[axis])]
    return tuple(bounds)


def normalization(kind: str) -> tio.Transform:
    """The intensity transform: z-score or percentile rescaling, statistics over the foreground."""
    if kind == "zscore":
        return tio.ZNormalization(masking_method="foreground", copy=False)
    return tio.RescaleIntensity(
        out_min_max=(0, 1), percentiles=RESCALE_PERCENTILES, masking_method="foreground", copy=False
    )


def preprocessing_record(data: DataConfig) -> PreprocessingRecord:
    """How :func:`preprocess_case` transforms every volume, for ``dataset.json``."""
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
