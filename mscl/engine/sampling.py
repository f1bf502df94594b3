"""Lesion-weighted patch sampling with flips and 90-degree rotations, as batched tensor ops on any device.

Sampling has two steps: :func:`draw_patch_params` draws, for every patch, its corner, flips and rotation;
:func:`gather_patches` then reads all patches with ONE gather (a flat ``index_select``) per tensor.
Augmentation costs nothing extra: flips and rotations are folded into the gather's source indices, so a
patch comes out already flipped and rotated, image and label through the same indices (always aligned).

A patch is ``rot90(flip(crop), k, dims=ROTATION_AXES)``: ``crop`` is the box at ``start`` in the cache,
``flip`` reverses the flagged axes, ``rot90`` has :func:`torch.rot90`'s meaning. Rotations act in the plane
of array axes 0 and 1 (the axial plane of RAS-oriented volumes, MONAI's ``RandRotate90`` default); a patch
that is not square in that plane is only rotated by 0 or 180 degrees.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from mscl.engine.cache import CaseCache

ROTATION_AXES = (0, 1)  # the plane :func:`_source_index` rotates in (output axes i, j)


@dataclass(frozen=True)
class PatchParams:
    """Where and how each patch of a batch is taken (all tensors on the cache device).

    Attributes:
        cases: ``(B,)`` case index of each patch.
        starts: ``(B, 3)`` corner of the crop in the padded volume.
        flips: ``(B, 3)`` bool, axes reversed before rotation.
        rotations: ``(B,)`` number of quarter turns ``k`` in :data:`ROTATION_AXES`.
    """

    cases: torch.Tensor
    starts: torch.Tensor
    flips: torch.Tensor
    rotations: torch.Tensor


def sample_patches(
    cache: CaseCache,
    case_idx: torch.Tensor,
    patch_size: Sequence[int],
    lesion_fraction: float,
    generator: torch.Generator,
    *,
    flips: bool = True,
    rotations: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample one augmented patch per entry of ``case_idx``.

    Args:
        cache: The stage's cases.
        case_idx: ``(B,)`` int64 case indices (on the cache device); repeat a case for several patches.
        patch_size: ``(p0, p1, p2)``, at most the cache's common shape.
        lesion_fraction: Probability that a patch is centred on a random lesion voxel of its case.
        generator: A generator on the cache device; the same state gives the same patches.
        flips: Random flip of each axis with probability 1/2.
        rotations: Random number of quarter turns in :data:`ROTATION_AXES`.

    Returns:
        ``(images, labels)``, float32, each ``(B, 1, p0, p1, p2)``.
    """
    params = draw_patch_params(
        cache, case_idx, patch_size, lesion_fraction, generator, flips=flips, rotations=rotations
    )
    return gather_patches(cache, params, patch_size)


def draw_patch_params(
    cache: CaseCache,
    case_idx: torch.Tensor,
    patch_size: Sequence[int],
    lesion_fraction: float,
    generator: torch.Generator,
    *,
    flips: bool = True,
    rotations: bool = True,
) -> PatchParams:
    """Draw crop corners, flips and rotations (arguments as in :func:`sample_patches`).

    A centre is a random lesion voxel of the case with probability ``lesion_fraction`` (when the case has
    any), else uniform within the case's extent. The crop ``[centre - p // 2, centre - p // 2 + p)`` is
    shifted to stay inside the case's extent, or starts at the origin where the case is smaller than the
    patch (the rest then comes from the zero padding).
    """
    if any(p > s for p, s in zip(patch_size, cache.shape, strict=True)):
        raise ValueError(
            f"patch size {tuple(patch_size)} exceeds the cache shape {cache.shape}; "
            "build the cache with min_shape=patch_size"
        )
    device = cache.device
    size = _device_vector(patch_size, device)
    cases = case_idx.to(device=device, dtype=torch.int64)
    batch = cases.numel()

    def uniform(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return torch.rand(shape, generator=generator, device=device, dtype=dtype)

    extents = cache.extents[cases]
    counts = cache.lesion_counts[cases]
    on_lesion = (uniform(batch) < lesion_fraction) & (counts > 0)
    pick = (uniform(batch, dtype=torch.float64) * counts).long().clamp(max=(counts - 1).clamp(min=0))
    lesion_centre = _lesion_centres(cache, cache.lesion_offsets[cases] + pick)
    uniform_centre = (uniform(batch, 3) * extents).long()
    centre = torch.where(on_lesion[:, None], lesion_centre, uniform_centre)
    starts = torch.clamp(centre - size // 2, min=torch.zeros_like(extents), max=(extents - size).clamp(min=0))

    flip_draw = uniform(batch, 3) < 0.5
    quarter_turns = (uniform(batch) * 4).long()
    a, b = ROTATION_AXES
    if patch_size[a] != patch_size[b]:
        quarter_turns = quarter_turns // 2 * 2
    return PatchParams(
        cases=cases,
        starts=starts,
        flips=flip_draw & flips,
        rotations=quarter_turns if rotations else torch.zeros_like(quarter_turns),
    )


def gather_patches(
    cache: CaseCache, params: PatchParams, patch_size: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Read the patches described by ``params`` (one gather per tensor), as float32 ``(B, 1, *patch)``."""
    flat = _source_index(params, patch_size, cache.shape).view(-1)
    shape = (params.cases.numel(), 1, *patch_size)
    images = cache.images.view(-1).index_select(0, flat).view(shape).float()
    labels = cache.labels.view(-1).index_select(0, flat).view(shape).float()
    return images, labels


def _source_index(
    params: PatchParams, patch_size: Sequence[int], volume: tuple[int, int, int]
) -> torch.Tensor:
    """``(B, p0, p1, p2)`` flat index into the cache tensors of each output voxel's source voxel."""
    device = params.cases.device
    p0, p1, p2 = patch_size
    i = torch.arange(p0, device=device).view(1, p0, 1)
    j = torch.arange(p1, device=device).view(1, 1, p1)
    k = params.rotations.view(-1, 1, 1)
    # Output (i, j) of rot90(x, k) reads x at (u, v) (torch.rot90 on a square plane; k in {0, 2} otherwise).
    u = torch.where(k == 0, i, torch.where(k == 1, j, torch.where(k == 2, p0 - 1 - i, p1 - 1 - j)))
    v = torch.where(k == 0, j, torch.where(k == 1, p0 - 1 - i, torch.where(k == 2, p1 - 1 - j, i)))
    t = torch.arange(p2, device=device).view(1, p2)
    flips = params.flips
    u = torch.where(flips[:, 0, None, None], p0 - 1 - u, u)
    v = torch.where(flips[:, 1, None, None], p1 - 1 - v, v)
    t = torch.where(flips[:, 2, None], p2 - 1 - t, t)
    starts = params.starts
    depth, height, width = volume
    z = params.cases.view(-1, 1, 1) * depth + starts[:, 0, None, None] + u
    y = starts[:, 1, None, None] + v
    x = starts[:, 2, None] + t
    return ((z * height + y) * width).unsqueeze(-1) + x[:, None, None, :]


def _device_vector(values: Sequence[int], device: torch.device) -> torch.Tensor:
    """An int64 vector made on ``device`` by fill kernels.

    ``torch.tensor(values, device=cuda)`` is a blocking host-to-device copy, which synchronises the stream:
    once per step it would stall the host until the GPU has finished the previous step.
    """
    return torch.stack([torch.full((), int(v), dtype=torch.int64, device=device) for v in values])


def _lesion_centres(cache: CaseCache, positions: torch.Tensor) -> torch.Tensor:
    """``(B, 3)`` coordinates of ``cache.lesion_indices[positions]``; zeros where no case has lesions.

    ``positions`` of lesion-free cases may point past their own range: their centres are discarded.
    """
    if cache.lesion_indices.numel() == 0:
        return torch.zeros((positions.numel(), 3), dtype=torch.int64, device=positions.device)
    flat = cache.lesion_indices[positions.clamp(max=cache.lesion_indices.numel() - 1)]
    _, h, w = cache.shape
    return torch.stack((flat // (h * w), flat // w % h, flat % w), dim=1)
