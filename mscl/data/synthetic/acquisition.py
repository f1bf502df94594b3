"""Center profiles and the simulated acquisition: contrast, slice thickness, ghosting, bias field, noise.

Every center is a fixed :class:`CenterProfile` (the table in docs/synthetic.md). An image is made from tissue
fractions (CSF, grey matter, white matter, lesion) by :func:`acquire`: tissue intensities of the contrast
(relative to white matter = 1, then tuned per center), blur along the slice axis for thick-slice centers,
a ghost along the phase-encoding axis, a smooth multiplicative bias field, Rician noise, the skull-stripped
brain mask and the scanner's arbitrary intensity scale. All randomness comes from the ``rng`` passed in.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import ndimage as ndi

FLAIR = "FLAIR"
T2W = "T2w"


@dataclass(frozen=True)
class TissueContrast:
    """Mean tissue intensities of one contrast, relative to white matter."""

    csf: float
    gm: float
    wm: float
    lesion: float


BASE_CONTRASTS: dict[str, TissueContrast] = {
    # FLAIR: fluid suppressed (CSF dark), grey matter brighter than white matter, lesions brightest.
    FLAIR: TissueContrast(csf=0.3, gm=1.25, wm=1.0, lesion=2.2),
    # T2w: CSF brightest, lesions bright (between grey matter and CSF), white matter darkest.
    T2W: TissueContrast(csf=2.8, gm=1.4, wm=1.0, lesion=2.4),
}


@dataclass(frozen=True)
class CenterProfile:
    """One synthetic hospital: subjects, contrasts, lesion load and scanner.

    Attributes:
        name: Center name as in the paper.
        paper_subjects: Subjects of the center in the paper's data.
        contrasts: Contrasts acquired for every subject (two means two cases per subject).
        lesion_count: Mean number of lesions per subject (1 + Poisson(lesion_count - 1)).
        lesion_median_ml: Median volume of one lesion (log-normal).
        gm_gain: Multiplier of the grey/white matter contrast (gm - wm).
        lesion_gain: Multiplier of the lesion/white matter contrast (lesion - wm).
        scale: Arbitrary scanner intensity of white matter.
        bias: Amplitude of the log bias field (cubic polynomial coefficients in [-bias, bias]).
        noise: Rician noise sigma relative to white matter.
        slice_mm: Slice thickness (FWHM of a Gaussian blur) along ``slice_axis``; 0 for 3D acquisitions.
        slice_axis: Axis of the thick slices (0 x, 1 y, 2 z).
        ghosting: Amplitude of a half-field-of-view ghost along the phase axis (y); 0 for none.
    """

    name: str
    paper_subjects: int
    contrasts: tuple[str, ...]
    lesion_count: float
    lesion_median_ml: float
    gm_gain: float = 1.0
    lesion_gain: float = 1.0
    scale: float = 1000.0
    bias: float = 0.15
    noise: float = 0.03
    slice_mm: float = 0.0
    slice_axis: int = 2
    ghosting: float = 0.0

    def tissue(self, contrast: str) -> TissueContrast:
        """Tissue intensities of ``contrast`` at this center."""
        base = BASE_CONTRASTS[contrast]
        return TissueContrast(
            csf=base.csf,
            gm=base.wm + self.gm_gain * (base.gm - base.wm),
            wm=base.wm,
            lesion=base.wm + self.lesion_gain * (base.lesion - base.wm),
        )

    def record(self) -> dict[str, Any]:
        """The profile with its per-contrast tissue intensities, for ``dataset.json``."""
        return {**asdict(self), "tissue": {c: asdict(self.tissue(c)) for c in self.contrasts}}


CENTERS: tuple[CenterProfile, ...] = (
    CenterProfile("BWH", 80, (FLAIR,), 9, 0.25, scale=900, bias=0.12, noise=0.03),
    CenterProfile("Karo", 51, (FLAIR, T2W), 7, 0.3, gm_gain=1.1, scale=1500, bias=0.18, noise=0.04),
    CenterProfile("Milan", 47, (T2W,), 8, 0.3, gm_gain=0.9, scale=400, bias=0.2, noise=0.04, slice_mm=3.0),
    CenterProfile("Rennes", 51, (FLAIR,), 10, 0.2, lesion_gain=1.1, scale=2500, bias=0.1, noise=0.05),
    CenterProfile("NIH", 28, (FLAIR,), 8, 0.3, lesion_gain=0.95, scale=700, noise=0.03, ghosting=0.06),
    CenterProfile(
        "Montp", 13, (FLAIR,), 6, 0.35, gm_gain=1.2, scale=1200, bias=0.2, slice_mm=2.5, slice_axis=0
    ),
    CenterProfile("UCSF", 12, (FLAIR,), 9, 0.2, lesion_gain=0.9, scale=350, bias=0.12, noise=0.06),
    CenterProfile("AMU", 8, (FLAIR,), 7, 0.25, gm_gain=0.9, scale=1800, bias=0.25, noise=0.035),
)
PROFILES: dict[str, CenterProfile] = {profile.name: profile for profile in CENTERS}


@dataclass(frozen=True)
class TissueFractions:
    """Per-voxel tissue fractions of one subject on the synthesis grid."""

    csf: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    lesion: np.ndarray
    mask: np.ndarray
    lesion_gain: np.ndarray
    """Per-voxel multiplier of the lesion intensity (heterogeneity)."""


def acquire(
    tissue: TissueFractions, profile: CenterProfile, contrast: str, spacing: float, rng: np.random.Generator
) -> np.ndarray:
    """Simulate one acquisition of a subject; returns the raw float32 image (background 0)."""
    means = profile.tissue(contrast)
    texture = 1.0 + 0.04 * smooth_field(tissue.csf.shape, rng, frequencies=8)
    image = texture * (
        means.csf * tissue.csf
        + means.gm * tissue.gm
        + means.wm * tissue.wm
        + means.lesion * tissue.lesion * tissue.lesion_gain
    )
    if profile.slice_mm > spacing:
        sigma = np.sqrt(profile.slice_mm**2 - spacing**2) / 2.355 / spacing
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
