"""NIfTI scans off the training grid for the predict tests: a head with one bright lesion, in world mm.

Each scan samples the same analytic world (an ellipsoid head, a spherical lesion at :data:`LESION_MM`) on
its own grid: LPS or RAS axes, anisotropic voxels, float32 or int16 with intensity scaling.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

HEAD_RADII_MM = np.array([18.0, 20.0, 16.0])
LESION_MM = np.array([5.0, -4.0, 3.0])
LESION_RADIUS_MM = 4.0
INT16_SLOPE, INT16_INTER = 0.25, -20.0
GRIDS: dict[str, dict[str, object]] = {
    "lps": {"flip": (-1, -1, 1), "spacing": (1.0, 1.0, 1.0), "int16": False},
    "anisotropic": {"flip": (1, 1, 1), "spacing": (1.3, 0.8, 2.2), "int16": False},
    "int16-scaled": {"flip": (-1, 1, 1), "spacing": (0.9, 1.1, 1.6), "int16": True},
}


def world_of(shape: tuple[int, ...], affine: np.ndarray) -> np.ndarray:
    """World coordinates (mm) of every voxel centre, shape ``(*shape, 3)``."""
    index = np.stack(np.meshgrid(*(np.arange(n) for n in shape), indexing="ij"), axis=-1)
    return index @ affine[:3, :3].T + affine[:3, 3]


def grid(kind: str) -> tuple[tuple[int, int, int], np.ndarray]:
    """Shape and affine of a grid covering the head plus a margin."""
    spec = GRIDS[kind]
    spacing = np.array(spec["spacing"], dtype=float)
    flip = np.array(spec["flip"], dtype=float)
    shape = tuple(int(n) for n in np.ceil(2 * (HEAD_RADII_MM + 6.0) / spacing))
    affine = np.diag([*(flip * spacing), 1.0])
    affine[:3, 3] = -flip * spacing * (np.array(shape) - 1) / 2  # centred on the world origin
    return (shape[0], shape[1], shape[2]), affine


def truth(shape: tuple[int, ...], affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The head and lesion masks sampled on a grid."""
    world = world_of(shape, affine)
    head = (((world / HEAD_RADII_MM) ** 2).sum(-1)) <= 1.0
    lesion = np.linalg.norm(world - LESION_MM, axis=-1) <= LESION_RADIUS_MM
    return head, lesion


def write_scan(path: Path, kind: str, seed: int = 0, label: Path | None = None) -> nib.Nifti1Image:
    """Write the scan of grid ``kind`` (and its lesion mask at ``label``); returns the scan as saved."""
    shape, affine = grid(kind)
    head, lesion = truth(shape, affine)
    rng = np.random.default_rng(seed)
    image = np.where(head, 100.0, 0.0) + 200.0 * lesion + rng.normal(0, 3.0, shape)
    if GRIDS[kind]["int16"]:  # stored = (value - inter) / slope, as scanners write them
        scan = nib.Nifti1Image(np.round((image - INT16_INTER) / INT16_SLOPE).astype(np.int16), affine)
        scan.header.set_slope_inter(INT16_SLOPE, INT16_INTER)
    else:
        scan = nib.Nifti1Image(image.astype(np.float32), affine)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(scan, path)
    if label is not None:
        nib.save(nib.Nifti1Image(lesion.astype(np.uint8), affine), label)
    return nib.load(path)
