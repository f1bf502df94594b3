"""Subject anatomy from the ICBM152 2009 tissue maps that nilearn ships offline.

The template (grey matter, white matter and brain mask at 1 mm) is cropped to the brain, CSF is derived as
``mask - GM - WM`` (sulci and ventricles), the lateral ventricles are located as the two largest deep CSF
components, and everything is resampled once per spacing (cached per process). A subject is the template
warped by one random transform: a small rotation and anisotropic scaling about the brain centre, a
ventricle enlargement (atrophy) that pushes tissue away from the ventricles, and a smooth random
deformation. Lesion zones and the distance to the ventricles travel with the warp, so lesions and the
periventricular rim are placed in the subject's own space.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial.transform import Rotation

from mscl.data.synthetic.acquisition import smooth_field

PAD_MM = 12.0
"""Margin kept around the template brain so warps never cut it."""
DEEP_CSF_MM = 25.0
"""CSF this far inside the brain mask seeds the lateral ventricles."""
VENTRICLE_PUSH_SIGMA_MM = 8.0
MAX_ROTATION_DEG = 5.0
MAX_SCALE = 0.06
MAX_VENTRICLE_PUSH_MM = 3.0
DEFORMATION_MM = 1.5
OUTSIDE, PERIVENTRICULAR, DEEP, JUXTACORTICAL = 0, 1, 2, 3
ZONE_WM = 0.5
"""White-matter fraction a voxel needs to belong to a lesion zone."""
PERIVENTRICULAR_MM = 6.0
JUXTACORTICAL_MM = 3.0
FAR_MM = 1000.0
"""Distance used when a structure is absent at a coarse spacing."""
RIM_DECAY_MM = 2.5
"""Decay length of the periventricular rim (caps and bands) beyond the first voxel off the ventricles."""


@dataclass(frozen=True)
class Anatomy:
    """Tissue maps of one brain on an isotropic grid of ``spacing`` mm (float32 in [0, 1] or mm)."""

    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    zone: np.ndarray
    """Lesion zone of every voxel (int8): :data:`OUTSIDE`, :data:`PERIVENTRICULAR`, :data:`DEEP` or
    :data:`JUXTACORTICAL`."""
    ventricle_mm: np.ndarray
    """Distance to the lateral ventricles in mm."""
    spacing: float

    @property
    def mask(self) -> np.ndarray:
        """Brain mask fraction: the sum of the tissue fractions."""
        return np.clip(self.gm + self.wm + self.csf, 0.0, 1.0)

    @property
    def rim_weight(self) -> np.ndarray:
        """Share of each voxel's white matter in the periventricular rim: 1 next to the ventricles, then
        ``exp(-(d - spacing) / RIM_DECAY_MM)``."""
        beyond = np.maximum(self.ventricle_mm - self.spacing, 0.0)
        return np.exp(-beyond / RIM_DECAY_MM).astype(np.float32)

    @property
    def shape(self) -> tuple[int, int, int]:
        """Grid shape."""
        return self.gm.shape  # type: ignore[return-value]


@dataclass(frozen=True)
class Template:
    """The resampled template plus the ventricle push field used to enlarge ventricles."""

    anatomy: Anatomy
    push: np.ndarray
    """Unit-max vector field (3, *shape) pointing towards the ventricles."""


@lru_cache(maxsize=4)
def load_template(spacing: float) -> Template:
    """The ICBM152 2009 template on an isotropic ``spacing`` mm grid (cached per process)."""
    from nilearn import datasets

    gm = np.asarray(datasets.load_mni152_gm_template(resolution=1).dataobj, dtype=np.float32)
    wm = np.asarray(datasets.load_mni152_wm_template(resolution=1).dataobj, dtype=np.float32)
    mask = np.asarray(datasets.load_mni152_brain_mask(resolution=1).dataobj) > 0
    box = _bounding_box(mask, int(PAD_MM))
    gm, wm, mask = gm[box], wm[box], mask[box]
    csf = np.clip(mask - gm - wm, 0.0, 1.0)
    ventricles = _lateral_ventricles(csf, mask)
    gm, wm, csf, ventricles_f = (_resample(a.astype(np.float32), spacing) for a in (gm, wm, csf, ventricles))
    ventricle_mm = _distance_mm(ventricles_f > 0.5, spacing)
    anatomy = Anatomy(
        gm=gm,
        wm=wm,
        csf=csf,
        zone=_zones(wm, gm, ventricle_mm, spacing),
        ventricle_mm=ventricle_mm,
        spacing=spacing,
    )
    smooth = ndi.gaussian_filter(ventricles_f, VENTRICLE_PUSH_SIGMA_MM / spacing)
    push = np.stack(np.gradient(smooth)).astype(np.float32)
    push /= max(float(np.abs(push).max()), 1e-12)
    return Template(anatomy=anatomy, push=push)


def subject_anatomy(template: Template, rng: np.random.Generator) -> Anatomy:
    """Warp the template into one random subject (rotation, scaling, ventricle enlargement, deformation)."""
    base = template.anatomy
    s = base.spacing
    shape = base.shape
    grid = np.indices(shape, dtype=np.float32).reshape(3, -1)
    centre = np.array([(n - 1) / 2 for n in shape], dtype=np.float32)[:, None]
    rotation = Rotation.from_rotvec(np.deg2rad(rng.uniform(-MAX_ROTATION_DEG, MAX_ROTATION_DEG, 3)))
    scale = 1.0 + rng.uniform(-MAX_SCALE, MAX_SCALE) + rng.uniform(-MAX_SCALE / 3, MAX_SCALE / 3, 3)
    matrix = (rotation.as_matrix() / scale[None, :]).astype(np.float32)
    coords = matrix @ (grid - centre) + centre
    push_mm = rng.uniform(0.0, MAX_VENTRICLE_PUSH_MM)
    coords += (push_mm / s) * template.push.reshape(3, -1)
    for axis in range(3):
        coords[axis] += (DEFORMATION_MM / s) * smooth_field(shape, rng, frequencies=4).ravel()

    tissue = _warp(np.stack([base.gm, base.wm, base.csf, base.ventricle_mm]), coords, "bilinear")
    zone = _warp(base.zone[None].astype(np.float32), coords, "nearest")[0].astype(np.int8)
    return Anatomy(gm=tissue[0], wm=tissue[1], csf=tissue[2], zone=zone, ventricle_mm=tissue[3], spacing=s)


def _warp(volumes: np.ndarray, coords: np.ndarray, mode: str) -> np.ndarray:
    """Sample ``volumes`` (C, *shape) at voxel ``coords`` (3, N), edge values outside (torch grid_sample)."""
    import torch
    from torch.nn.functional import grid_sample

    shape = volumes.shape[1:]
    scale = np.array([2.0 / (n - 1) for n in shape], dtype=np.float32)[:, None]
    grid = (coords * scale - 1.0)[::-1].T.reshape(
        1, *shape, 3
    )  # grid_sample wants (x, y, z) = axes (2, 1, 0)
    sampled = grid_sample(
        torch.from_numpy(volumes)[None],
        torch.from_numpy(np.ascontiguousarray(grid)),
        mode=mode,
        padding_mode="border",
        align_corners=True,
    )
    return sampled[0].numpy()


def _bounding_box(mask: np.ndarray, margin: int) -> tuple[slice, ...]:
    box = []
    for axis in range(mask.ndim):
        hits = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        box.append(slice(max(0, hits[0] - margin), min(mask.shape[axis], hits[-1] + margin + 1)))
    return tuple(box)


def _lateral_ventricles(csf: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The two largest deep-CSF components, grown back into the surrounding CSF."""
    coarse = ndi.distance_transform_edt(mask[::2, ::2, ::2], sampling=2.0)
    depth = coarse[np.ix_(*(np.arange(n) // 2 for n in mask.shape))]
    seeds, count = ndi.label((csf > 0.5) & (depth > DEEP_CSF_MM))
    sizes = ndi.sum_labels(np.ones_like(seeds), seeds, index=np.arange(1, count + 1))
    keep = np.argsort(sizes)[::-1][:2] + 1
    ventricles = np.isin(seeds, keep)
    return ndi.binary_dilation(ventricles, iterations=6, mask=csf > 0.4)


def _resample(volume: np.ndarray, spacing: float) -> np.ndarray:
    """Partial-volume resampling from 1 mm: Gaussian prefilter, then linear interpolation."""
    if spacing == 1.0:
        return volume
    smoothed = ndi.gaussian_filter(volume, np.sqrt(spacing**2 - 1.0) / 2.355) if spacing > 1 else volume
    return ndi.zoom(smoothed, 1.0 / spacing, order=1, mode="nearest", grid_mode=True).astype(np.float32)


def _zones(wm: np.ndarray, gm: np.ndarray, ventricle_mm: np.ndarray, spacing: float) -> np.ndarray:
    """Lesion zones: white matter near the ventricles, near grey matter, or deep."""
    near = max(PERIVENTRICULAR_MM, 1.5 * spacing)
    cortex_mm = _distance_mm(gm > 0.5, spacing)
    zone = np.where(wm >= ZONE_WM, DEEP, OUTSIDE).astype(np.int8)
    zone[(zone == DEEP) & (cortex_mm <= max(JUXTACORTICAL_MM, 1.5 * spacing)) & (ventricle_mm > 2 * near)] = (
        JUXTACORTICAL
    )
    zone[(zone == DEEP) & (ventricle_mm <= near)] = PERIVENTRICULAR
    return zone


def _distance_mm(region: np.ndarray, spacing: float) -> np.ndarray:
    if not region.any():
        return np.full(region.shape, FAR_MM, dtype=np.float32)
    return ndi.distance_transform_edt(~region, sampling=spacing).astype(np.float32)
