"""The in-memory case cache of one training stage, on the training device.

Every case of a stage (current center plus replay memory) is copied once into one padded tensor; patches
are then sampled there (:mod:`mscl.engine.sampling`) and training never reads from disk.
Each case sits at the origin of the common shape ``(D, H, W)`` (the per-axis maximum of the case shapes,
raised to ``min_shape``); ``extents`` holds its own shape, the rest is zero padding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from mscl.errors import DataError

LESION_THRESHOLD = 0.5

ArrayLike = np.ndarray | torch.Tensor


@dataclass(frozen=True)
class CaseCache:
    """Padded cases of one stage with their lesion voxels, all on one device.

    Attributes:
        images: ``(N, D, H, W)`` intensities, zero-padded.
        labels: ``(N, D, H, W)`` soft labels in ``[0, 1]``, zero-padded.
        extents: ``(N, 3)`` int64, each case's own shape (its valid region starts at the origin).
        lesion_indices: ``(L,)`` int64 flat indices into one ``(D, H, W)`` volume of every case's lesion
            voxels (label >= 0.5; where none, label > 0; where none either, the case has no entries and is
            sampled uniformly), cases concatenated in order.
        lesion_offsets: ``(N + 1,)`` int64; case ``i`` owns ``lesion_indices[offsets[i]:offsets[i + 1]]``.
        case_ids: One identifier per case (for messages and logs).
    """

    images: torch.Tensor
    labels: torch.Tensor
    extents: torch.Tensor
    lesion_indices: torch.Tensor
    lesion_offsets: torch.Tensor
    case_ids: tuple[str, ...]

    @classmethod
    def from_arrays(
        cls,
        images: Sequence[ArrayLike],
        labels: Sequence[ArrayLike],
        device: torch.device | str,
        *,
        dtype: torch.dtype | None = None,
        min_shape: Sequence[int] = (1, 1, 1),
        case_ids: Sequence[str] | None = None,
    ) -> CaseCache:
        """Build the cache from 3D image/label pairs.

        Args:
            images: One 3D array per case (shapes may differ between cases).
            labels: Matching soft labels, same shape as their image.
            device: Where the cache lives (the training device).
            dtype: Storage dtype; default float16 on CUDA, float32 elsewhere.
            min_shape: Lower bound of the common shape, e.g. the patch size, so that every patch fits.
            case_ids: Names used in error messages; default ``case0``, ``case1``...

        Raises:
            DataError: no cases, mismatched counts, a non-3D array or an image/label shape mismatch.
        """
        device = torch.device(device)
        ids = tuple(case_ids) if case_ids is not None else tuple(f"case{i}" for i in range(len(images)))
        _check_inputs(images, labels, ids)
        if dtype is None:
            dtype = torch.float16 if device.type == "cuda" else torch.float32
        shapes = [tuple(int(s) for s in image.shape) for image in images]
        common = tuple(max([*(shape[a] for shape in shapes), int(min_shape[a])]) for a in range(3))
        stacked_images = torch.zeros((len(images), *common), dtype=dtype, device=device)
        stacked_labels = torch.zeros_like(stacked_images)
        lesions: list[torch.Tensor] = []
        for i, (image, label) in enumerate(zip(images, labels, strict=True)):
            d, h, w = shapes[i]
            stacked_images[i, :d, :h, :w] = torch.as_tensor(image).to(device=device, dtype=dtype)
            stacked_labels[i, :d, :h, :w] = torch.as_tensor(label).to(device=device, dtype=dtype)
            lesions.append(_lesion_voxels(stacked_labels[i]))
        counts = torch.tensor([0] + [len(idx) for idx in lesions], dtype=torch.int64, device=device)
        return cls(
            images=stacked_images,
            labels=stacked_labels,
            extents=torch.tensor(shapes, dtype=torch.int64, device=device),
            lesion_indices=torch.cat(lesions),
            lesion_offsets=counts.cumsum(0),
            case_ids=ids,
        )

    @property
    def device(self) -> torch.device:
        """The device holding every tensor of the cache."""
        return self.images.device

    @property
    def shape(self) -> tuple[int, int, int]:
        """The common padded shape ``(D, H, W)``."""
        d, h, w = self.images.shape[1:]
        return d, h, w

    @property
    def lesion_counts(self) -> torch.Tensor:
        """``(N,)`` number of lesion voxels per case (0 means uniform sampling only)."""
        return self.lesion_offsets.diff()

    @property
    def nbytes(self) -> int:
        """Bytes held on the device."""
        tensors = (self.images, self.labels, self.extents, self.lesion_indices, self.lesion_offsets)
        return sum(t.numel() * t.element_size() for t in tensors)

    def __len__(self) -> int:
        return self.images.shape[0]


def _check_inputs(images: Sequence[ArrayLike], labels: Sequence[ArrayLike], ids: Sequence[str]) -> None:
    if not images:
        raise DataError("case cache: no cases to cache")
    if len(images) != len(labels) or len(images) != len(ids):
        raise DataError(f"case cache: {len(images)} images, {len(labels)} labels, {len(ids)} case ids")
    for case_id, image, label in zip(ids, images, labels, strict=True):
        if image.ndim != 3:
            raise DataError(f"case {case_id!r}: image must be 3D, got shape {tuple(image.shape)}")
        if tuple(image.shape) != tuple(label.shape):
            raise DataError(
                f"case {case_id!r}: image shape {tuple(image.shape)} != label shape {tuple(label.shape)}"
            )


def _lesion_voxels(label: torch.Tensor) -> torch.Tensor:
    """Flat indices of the lesion voxels of one padded label volume (see :class:`CaseCache`)."""
    flat = label.flatten()
    indices = torch.nonzero(flat >= LESION_THRESHOLD).flatten()
    if indices.numel() == 0:
        indices = torch.nonzero(flat > 0).flatten()
    return indices
