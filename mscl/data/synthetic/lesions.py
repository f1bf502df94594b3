"""MS lesions: count, volume and location drawn per subject, rasterised as soft irregular ellipsoids.

Distribution (docs/synthetic.md): ``1 + Poisson(lesion_count - 1)`` lesions per subject (center profile);
each lesion's volume is log-normal around the center's ``lesion_median_ml`` (sigma :data:`VOLUME_SIGMA`,
clipped to :data:`VOLUME_RANGE_ML`); its zone is periventricular, deep white matter or juxtacortical with
probabilities :data:`ZONE_PROBABILITIES`. A lesion is a main ellipsoid (random axes and orientation) plus
up to two smaller satellite ellipsoids, which makes irregular outlines. Labels are soft: a linear ramp one
voxel wide across each border (partial volume), so values lie in [0, 1]. The main ellipsoid is centred on
a voxel and has a radius of at least :data:`MIN_RADIUS_VOXELS` voxels, so every lesion owns at least one
voxel with label 1 at any spacing. Each lesion gets its own intensity gain (heterogeneity).

The image shows the true lesions; the label is what the center's raters draw (:class:`AnnotationStyle`):
the same ramp moved ``border_mm`` outwards (wider outlines) or inwards (tighter), and no label at all for a
lesion whose volume is under ``min_lesion_ml`` or whose zone is in ``skip_zones``. The default style labels
the true lesions, bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from mscl.data.synthetic.anatomy import DEEP, JUXTACORTICAL, PERIVENTRICULAR, Anatomy
from mscl.data.synthetic.profiles import AnnotationStyle

VOLUME_SIGMA = 0.9
VOLUME_RANGE_ML: tuple[float, float] = (0.02, 3.0)
ZONE_PROBABILITIES: dict[int, float] = {PERIVENTRICULAR: 0.5, DEEP: 0.3, JUXTACORTICAL: 0.2}
ZONE_NAMES: dict[int, str] = {
    PERIVENTRICULAR: "periventricular",
    DEEP: "deep",
    JUXTACORTICAL: "juxtacortical",
}
MIN_RADIUS_VOXELS = 0.6
AXIS_SIGMA = 0.3
"""Log-normal spread of the three semi-axes around the equivalent-sphere radius."""
SATELLITES_MAX = 2
CENTRE_PARENCHYMA = 0.9
"""Grey plus white matter fraction a lesion centre needs (so it is not in CSF)."""


@dataclass(frozen=True)
class LesionMaps:
    """One subject's lesions on the synthesis grid."""

    indicator: np.ndarray
    """Soft lesion indicator in [0, 1] (union of the ellipsoids)."""
    label: np.ndarray
    """Lesion fraction of each voxel: the indicator times the parenchyma (GM + WM) fraction."""
    annotation: np.ndarray
    """The raters' label: ``label`` as the center's annotation style outlines it (the stored label)."""
    gain: np.ndarray
    """Per-voxel multiplier of the lesion intensity (1 outside lesions)."""
    count: int


def lesion_distribution() -> dict[str, object]:
    """The lesion model's constants, recorded in ``dataset.json``."""
    return {
        "count": "1 + Poisson(center.lesion_count - 1)",
        "volume_ml": f"lognormal(log(center.lesion_median_ml), {VOLUME_SIGMA})",
        "volume_range_ml": list(VOLUME_RANGE_ML),
        "zones": {ZONE_NAMES[zone]: p for zone, p in ZONE_PROBABILITIES.items()},
        "min_radius_voxels": MIN_RADIUS_VOXELS,
        "axis_sigma": AXIS_SIGMA,
        "satellites_max": SATELLITES_MAX,
        "intensity": "uniform(center.lesion_intensity) gain on the lesion's contrast over white matter",
        "annotation": "label ramp moved center.annotation.border_mm outwards; lesions of a volume under "
        "center.annotation.min_lesion_ml or in a zone of center.annotation.skip_zones unlabelled",
    }


def draw_lesions(
    anatomy: Anatomy,
    count_mean: float,
    median_ml: float,
    intensity_range: tuple[float, float],
    rng: np.random.Generator,
    style: AnnotationStyle | None = None,
) -> LesionMaps:
    """Draw and rasterise one subject's lesions, and label them in the raters' ``style``.

    The returned ``label`` is the lesion fraction of each voxel (the soft lesion indicator times the
    parenchyma fraction, since lesions replace tissue, not CSF); ``annotation`` is the same for the
    outlines the raters draw. The style draws no random numbers, so it never moves the image.
    """
    style = style or AnnotationStyle()
    s = anatomy.spacing
    shape = anatomy.shape
    indicator = np.zeros(shape, dtype=np.float32)
    outlined = np.zeros(shape, dtype=np.float32)
    weight = np.zeros(shape, dtype=np.float32)
    weighted_gain = np.zeros(shape, dtype=np.float32)
    parenchyma = np.clip(anatomy.gm + anatomy.wm, 0.0, 1.0)
    candidates = _candidates(anatomy, parenchyma)
    count = 1 + int(rng.poisson(max(count_mean - 1.0, 0.0)))
    zones = list(ZONE_PROBABILITIES)
    probabilities = np.array([ZONE_PROBABILITIES[z] for z in zones])
    for _ in range(count):
        zone = zones[int(rng.choice(len(zones), p=probabilities))]
        pool = candidates[zone] if len(candidates[zone]) else candidates[DEEP]
        centre = np.array(np.unravel_index(pool[int(rng.integers(len(pool)))], shape), dtype=np.float64) * s
        volume = float(np.clip(rng.lognormal(np.log(median_ml), VOLUME_SIGMA), *VOLUME_RANGE_ML))
        radius = max((3.0 * volume * 1000.0 / (4.0 * np.pi)) ** (1 / 3), MIN_RADIUS_VOXELS * s)
        gain = rng.uniform(*intensity_range)
        blobs = [(centre, radius)]
        for _ in range(int(rng.integers(0, SATELLITES_MAX + 1))):
            direction = rng.standard_normal(3)
            direction /= np.linalg.norm(direction)
            blobs.append((centre + 0.7 * radius * direction, radius * rng.uniform(0.4, 0.7)))
        small = _sphere_ml(radius) < style.min_lesion_ml  # the volume after the one-voxel floor
        labelled = not small and ZONE_NAMES[zone] not in style.skip_zones
        for blob_centre, blob_radius in blobs:
            box, distance_mm = _ellipsoid_distance(shape, blob_centre, blob_radius, s, style.border_mm, rng)
            soft = _ramp(distance_mm, s)
            np.maximum(indicator[box], soft, out=indicator[box])
            if labelled:
                np.maximum(outlined[box], _ramp(distance_mm + style.border_mm, s), out=outlined[box])
            weight[box] += soft
            weighted_gain[box] += soft * np.float32(gain)
    gain_map = np.where(weight > 0, weighted_gain / np.maximum(weight, 1e-6), 1.0).astype(np.float32)
    return LesionMaps(
        indicator=indicator,
        label=indicator * parenchyma,
        annotation=outlined * parenchyma,
        gain=gain_map,
        count=count,
    )


def _candidates(anatomy: Anatomy, parenchyma: np.ndarray) -> dict[int, np.ndarray]:
    """Flat indices of the voxels where a lesion of each zone may be centred."""
    allowed = (parenchyma >= CENTRE_PARENCHYMA).ravel()
    zone = anatomy.zone.ravel()
    candidates = {z: np.flatnonzero(allowed & (zone == z)) for z in ZONE_PROBABILITIES}
    if not len(candidates[DEEP]):
        candidates[DEEP] = (
            np.flatnonzero(allowed & (zone > 0))
            if (allowed & (zone > 0)).any()
            else np.array([int(np.argmax(anatomy.wm))])
        )
    return candidates


def _ellipsoid_distance(
    shape: tuple[int, int, int],
    centre_mm: np.ndarray,
    radius_mm: float,
    spacing: float,
    border_mm: float,
    rng: np.random.Generator,
) -> tuple[tuple[slice, ...], np.ndarray]:
    """An ellipsoid of equivalent radius ``radius_mm`` with random axes and orientation.

    Returns the box of the grid it covers (wide enough for an outline ``border_mm`` outside it) and the
    (approximate) signed distance to its surface there, in mm, positive inside.
    """
    axes = radius_mm * np.exp(AXIS_SIGMA * rng.standard_normal(3))
    axes *= radius_mm / np.prod(axes) ** (1 / 3)
    rotation = Rotation.random(random_state=rng).as_matrix()
    reach = axes.max() + spacing + max(border_mm, 0.0)
    low = np.clip(np.floor((centre_mm - reach) / spacing).astype(int), 0, shape)
    high = np.clip(np.ceil((centre_mm + reach) / spacing).astype(int) + 1, 0, shape)
    box = tuple(slice(lo, hi) for lo, hi in zip(low, high, strict=True))
    ranges = [np.arange(lo, hi) * spacing for lo, hi in zip(low, high, strict=True)]
    points = np.stack(np.meshgrid(*ranges, indexing="ij"), axis=-1) - centre_mm
    local = points @ rotation / axes
    return box, (1.0 - np.sqrt((local * local).sum(axis=-1))) * radius_mm


def _sphere_ml(radius_mm: float) -> float:
    """Volume in mL of a sphere of radius ``radius_mm``."""
    return 4.0 * np.pi * radius_mm**3 / 3000.0


def _ramp(distance_mm: np.ndarray, spacing: float) -> np.ndarray:
    """Soft membership ``0.5 + d / spacing`` clipped to [0, 1]: partial volume over one voxel."""
    return np.clip(0.5 + distance_mm / spacing, 0.0, 1.0).astype(np.float32)
