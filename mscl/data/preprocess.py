"""Preprocessing of one real image-label pair: nibabel reads, TorchIO reorients and resamples.

Steps, in order: canonical RAS orientation, resampling to ``data.spacing`` (labels interpolated linearly so
they stay soft), then :func:`mscl.data.standardize.standardize`: crop to the foreground bounding box plus
``data.crop_margin_mm``, one intensity normalisation over the whole volume, labels clipped to [0, 1].
The output is a :class:`PreparedCase`. :func:`preprocess_image` applies the same steps to an image alone
(``mscl predict``) and returns the :class:`~mscl.data.grid.GridMap` that maps a prediction back.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torchio as tio

from mscl.config import DataConfig
from mscl.data.grid import GridMap
from mscl.data.sources import SourceCase, check_pair, read_header, short_reason
from mscl.data.standardize import standardize, standardize_with_box
from mscl.data.writer import PreparedCase
from mscl.errors import DataError


def preprocess_case(source: SourceCase, data: DataConfig) -> PreparedCase:
    """Read, check and preprocess one (subject, contrast) pair.

    Raises:
        DataError: naming the file that is unreadable, truncated, off its image's grid, holds NaN or
            infinite voxels, has label values outside [0, 1] beyond ``data.label_tolerance``, or has no
            foreground.
    """
    if source.label is None:
        raise DataError(f"{source.image}: no lesion mask (prepare needs one per image)")
    check_pair(source.image, source.label)
    image, affine = read_volume(source.image)
    label, _ = read_volume(source.label)
    check_label_range(label, source, data.label_tolerance)
    subject = to_model_grid(image, affine, data, label)
    spacing = tuple(float(s) for s in subject.image.spacing)
    try:
        image_out, label_out = standardize(
            subject.image.data[0], subject.label.data[0], spacing, data.crop_margin_mm, data.normalization
        )
    except DataError as exc:
        raise DataError(f"{source.image}: {exc}") from None
    return PreparedCase(
        subject=source.subject,
        center=source.center,
        contrast=source.contrast,
        image=image_out,
        label=label_out,
        spacing=spacing,  # type: ignore[arg-type]
        source_image=str(source.image),
        source_label=str(source.label),
    )


def to_model_grid(
    image: np.ndarray, affine: np.ndarray, data: DataConfig, label: np.ndarray | None = None
) -> tio.Subject:
    """An image (and its label) reoriented to canonical RAS and resampled to ``data.spacing``: a subject
    with ``image`` (and ``label``, interpolated linearly so that it stays soft)."""
    images: dict[str, tio.Image] = {
        "image": tio.ScalarImage(tensor=torch.from_numpy(image[None]), affine=affine)
    }
    if label is not None:
        images["label"] = tio.LabelMap(tensor=torch.from_numpy(label[None]), affine=affine)
    reorient_resample = tio.Compose(
        [tio.ToCanonical(copy=False), tio.Resample(data.spacing, label_interpolation="linear", copy=False)],
        copy=False,
    )
    return reorient_resample(tio.Subject(**images))


def preprocess_image(image: np.ndarray, affine: np.ndarray, data: DataConfig) -> tuple[np.ndarray, GridMap]:
    """One image preprocessed as :func:`preprocess_case` does its pairs, with the map back to its grid.

    Raises:
        DataError: the image has no foreground.
    """
    grid = to_model_grid(image, affine, data).image
    volume = grid.data[0]
    spacing = tuple(float(s) for s in grid.spacing)
    cropped, _, box = standardize_with_box(
        volume, torch.zeros_like(volume), spacing, data.crop_margin_mm, data.normalization
    )
    x, y, z = (int(n) for n in volume.shape)
    i, j, k = (int(n) for n in image.shape[:3])
    return cropped, GridMap((i, j, k), np.asarray(affine), (x, y, z), np.asarray(grid.affine), box)


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
