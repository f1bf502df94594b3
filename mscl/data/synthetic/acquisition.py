"""The simulated acquisition of one case at one center (its :class:`CenterProfile`).

An image is made from tissue fractions (CSF, grey matter, white matter, periventricular rim, lesion) by
:func:`acquire`: the center's tissue intensities of the contrast (relative to white matter = 1), a smooth
texture, its nonlinear intensity response (``** gamma``), blur for coarse in-plane resolution and along the
slice axis for 2D thick-slice protocols, a ghost along the phase-encoding axis, a smooth multiplicative bias
field, Rician noise, the skull-stripped brain mask and the scanner's arbitrary intensity scale. All
randomness comes from the ``rng`` passed in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from mscl.data.synthetic.profiles import CenterProfile, Contrast


@dataclass(frozen=True)
class TissueFractions:
    """Per-voxel tissue fractions of one subject on the synthesis grid."""

    csf: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    rim: np.ndarray
    """Periventricular rim fraction (taken out of white matter)."""
    lesion: np.ndarray
    mask: np.ndarray
    lesion_gain: np.ndarray
    """Per-voxel multiplier of the lesion's contrast over white matter (heterogeneity)."""


FWHM_TO_SIGMA = 1.0 / 2.355


def blur_sigma(fwhm_mm: float, spacing: float) -> float:
    """Gaussian sigma, in voxels of ``spacing`` mm, that brings the grid's resolution to ``fwhm_mm``."""
    return float(np.sqrt(fwhm_mm**2 - spacing**2) * FWHM_TO_SIGMA / spacing)


def acquire(
    tissue: TissueFractions,
    profile: CenterProfile,
    contrast: Contrast,
    spacing: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Simulate one acquisition of a subject; returns the raw float32 image (background 0)."""
    means = profile.contrasts[contrast]
    texture = 1.0 + 0.04 * smooth_field(tissue.csf.shape, rng, frequencies=8)
    lesion = means.wm + tissue.lesion_gain * (means.lesion - means.wm)
    image = texture * (
        means.csf * tissue.csf
        + means.gm * tissue.gm
        + means.wm * tissue.wm
        + means.rim * tissue.rim
        + lesion * tissue.lesion
    )
    image = np.power(np.maximum(image, 0.0), profile.gamma, dtype=np.float32)
    if profile.inplane_mm > spacing:
        inplane = [blur_sigma(profile.inplane_mm, spacing)] * 3
        inplane[profile.slice_axis] = 0.0
        image = ndi.gaussian_filter(image, inplane, mode="nearest")
    if profile.slice_mm > spacing:
        sigma = blur_sigma(profile.slice_mm, spacing)
        image = ndi.gaussian_filter1d(image, sigma, axis=profile.slice_axis, mode="nearest")
    if profile.ghosting:
        image = image + profile.ghosting * np.roll(image, image.shape[1] // 2, axis=1)
    image = image * bias_field(image.shape, profile.bias, rng)
    image = rician(image, profile.noise, rng)
    return (profile.scale * image * tissue.mask).astype(np.float32)


def bias_field(shape: tuple[int, ...], amplitude: float, rng: np.random.Generator) -> np.ndarray:
    """``exp`` of a random cubic polynomial over the volume, coefficients uniform in ``[-a, a]``."""
    axes = [np.linspace(-1.0, 1.0, n, dtype=np.float32) for n in shape]
    log_field = np.zeros(shape, dtype=np.float32)
    for i in range(4):
        for j in range(4 - i):
            for k in range(4 - i - j):
                coef = np.float32(rng.uniform(-amplitude, amplitude))
                log_field += (
                    coef
                    * (axes[0][:, None, None] ** i)
                    * (axes[1][None, :, None] ** j)
                    * (axes[2][None, None, :] ** k)
                )
    return np.exp(log_field)


def rician(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Magnitude of the image plus complex Gaussian noise of standard deviation ``sigma``."""
    real = image + sigma * rng.standard_normal(image.shape, dtype=np.float32)
    imag = sigma * rng.standard_normal(image.shape, dtype=np.float32)
    return np.sqrt(real * real + imag * imag)


def smooth_field(shape: tuple[int, ...], rng: np.random.Generator, frequencies: int) -> np.ndarray:
    """Smooth random field of unit standard deviation: random low-frequency cosine (DCT-II) basis.

    ``frequencies`` cosines per axis (0 to ``frequencies - 1`` half-periods over the volume); the sum over
    their products is evaluated as three small tensor contractions, so it costs a few passes over the grid.
    """
    coef = rng.standard_normal((frequencies,) * 3).astype(np.float32)
    coef[0, 0, 0] = 0.0
    bases = [
        np.cos(np.pi * np.outer(np.arange(frequencies), (np.arange(n) + 0.5) / n)).astype(np.float32)
        for n in shape
    ]
    field = np.tensordot(coef, bases[2], axes=([2], [0]))  # (f, f, z)
    field = np.tensordot(bases[1], field, axes=([0], [1]))  # (y, f, z)
    field = np.tensordot(bases[0], field, axes=([0], [1]))  # (x, y, z)
    return np.ascontiguousarray(field / max(float(field.std()), 1e-12), dtype=np.float32)
