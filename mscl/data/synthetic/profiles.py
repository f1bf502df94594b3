"""Settings of the synthetic generator: the ``synthetic`` config section and its center profiles.

A center is a named, validated set of acquisition, lesion and annotation parameters
(:class:`CenterProfile`), not code: the shipped eight live in ``mscl/presets/centers.yaml`` (a layer under
every preset), and a user changes one with ``--set synthetic.centers.Milan.noise=0.06`` or adds one in a
YAML file. Every random draw a profile drives is seeded by ``(synthetic.seed, center, subject, contrast)``
in the generator.
Importable without numpy or torch (the CLI validates configs at start-up).
"""

from __future__ import annotations

import re
from importlib import resources
from typing import Any, Literal

import yaml
from pydantic import Field, model_validator

from mscl.schema import StrictModel

FLAIR = "FLAIR"
T2W = "T2w"
Contrast = Literal["FLAIR", "T2w"]
CONTRAST_STREAMS: tuple[str, ...] = (FLAIR, T2W)
"""Fixed order of contrasts: the acquisition stream of a contrast is its index here plus one."""
CENTERS_FILE = "centers.yaml"
"""The shipped center profiles, in ``mscl/presets``: merged under every preset."""
CENTER_NAME = r"^[A-Za-z][A-Za-z0-9]{0,31}$"
LesionZone = Literal["periventricular", "deep", "juxtacortical"]


class TissueIntensities(StrictModel):
    """Mean tissue intensities of one contrast at one center, relative to normal white matter (= 1)."""

    csf: float = Field(gt=0)
    gm: float = Field(gt=0)
    lesion: float = Field(gt=0)
    rim: float = Field(
        1.0, gt=0, description="Periventricular rim (FLAIR caps and bands): bright, normal, never labelled."
    )

    @property
    def wm(self) -> float:
        """Normal white matter, the reference intensity."""
        return 1.0


class AnnotationStyle(StrictModel):
    """How a center's raters outline lesions: the label, not the image (inter-rater variability)."""

    border_mm: float = Field(
        0.0, ge=-1.5, le=1.5, description="Outline offset from the true lesion border: + wider, - tighter."
    )
    min_lesion_ml: float = Field(
        0.0, ge=0, le=1, description="Lesions smaller than this are seen in the image but left unlabelled."
    )
    skip_zones: frozenset[LesionZone] = Field(
        frozenset(), description="Lesion zones the protocol leaves unlabelled (seen in the image)."
    )


class CenterProfile(StrictModel):
    """One synthetic hospital: subjects, contrasts with their tissue intensities, lesions and scanner."""

    paper_subjects: int = Field(ge=2, description="Subjects of the center in the paper's data.")
    contrasts: dict[Contrast, TissueIntensities] = Field(min_length=1)
    lesion_count: float = Field(ge=1, description="Mean lesions per subject: 1 + Poisson(count - 1).")
    lesion_median_ml: float = Field(gt=0, le=3, description="Median volume of one lesion (log-normal).")
    lesion_intensity: tuple[float, float] = Field(
        (0.85, 1.15), description="Range of a lesion's own gain on (lesion - wm): faint to bright lesions."
    )
    scale: float = Field(1000.0, gt=0, description="Arbitrary scanner intensity of white matter.")
    gamma: float = Field(
        1.0, ge=0.3, le=3, description="Nonlinear intensity response: image ** gamma (white matter fixed)."
    )
    bias: float = Field(0.15, ge=0, le=0.5, description="Bias field: exp(cubic), coefficients in +-bias.")
    noise: float = Field(0.03, ge=0, le=0.5, description="Rician noise sigma relative to white matter.")
    slice_mm: float = Field(
        0.0, ge=0, le=10, description="Slice thickness (FWHM) of a 2D acquisition; 0: 3D."
    )
    slice_axis: int = Field(2, ge=0, le=2, description="Axis of the thick slices (0 x, 1 y, 2 z).")
    inplane_mm: float = Field(0.0, ge=0, le=6, description="In-plane resolution (FWHM); 0: the grid's.")
    ghosting: float = Field(0.0, ge=0, lt=1, description="Half-field-of-view ghost along y (amplitude).")
    annotation: AnnotationStyle = Field(
        default_factory=AnnotationStyle, description="The raters' style; the default labels the true lesions."
    )

    @model_validator(mode="after")
    def _tissue_order(self) -> CenterProfile:
        for contrast, t in self.contrasts.items():
            if contrast == FLAIR and not (t.csf < t.wm < t.gm < t.lesion and t.rim < t.lesion):
                raise ValueError(
                    "FLAIR needs csf < wm (1) < gm < lesion and rim < lesion "
                    f"(got csf {t.csf}, gm {t.gm}, lesion {t.lesion}, rim {t.rim})"
                )
            if contrast == T2W and not (t.wm < t.gm < t.lesion < t.csf and t.rim < t.lesion):
                raise ValueError(
                    "T2w needs wm (1) < gm < lesion < csf and rim < lesion "
                    f"(got gm {t.gm}, lesion {t.lesion}, csf {t.csf}, rim {t.rim})"
                )
        low, high = self.lesion_intensity
        if not 0 < low <= high:
            raise ValueError(f"lesion_intensity must be 0 < low <= high (got {low}, {high})")
        return self


def shipped_centers_layer() -> dict[str, Any]:
    """The raw ``{synthetic: {centers: ...}}`` layer of ``mscl/presets/centers.yaml``."""
    text = resources.files("mscl.presets").joinpath(CENTERS_FILE).read_text(encoding="utf-8")
    return yaml.safe_load(text) or {}


def shipped_centers() -> dict[str, CenterProfile]:
    """The eight shipped center profiles, validated."""
    raw = shipped_centers_layer()["synthetic"]["centers"]
    return {name: CenterProfile.model_validate(profile) for name, profile in raw.items()}


class SyntheticConfig(StrictModel):
    """The synthetic multi-center generator (``mscl prepare --synthetic``)."""

    spacing_mm: float = Field(3.0, gt=0, le=8)
    count_scale: float = Field(0.25, ge=0, le=1, description="Fraction of the paper's subject counts.")
    min_per_center: int = Field(3, ge=2, description="At least 2: every center is split into train and test.")
    max_per_center: int | None = Field(None, ge=1)
    seed: int = Field(0, ge=0)
    centers: dict[str, CenterProfile] = Field(
        default_factory=shipped_centers, description="Center name -> profile, in the paper's order."
    )

    @model_validator(mode="after")
    def _bounds(self) -> SyntheticConfig:
        if self.max_per_center is not None and self.max_per_center < self.min_per_center:
            raise ValueError("max_per_center must be >= min_per_center")
        if not self.centers:
            raise ValueError("centers: at least one center profile is needed")
        bad = [name for name in self.centers if not re.match(CENTER_NAME, name)]
        if bad:
            raise ValueError(f"centers: {', '.join(map(repr, bad))} must be a letter then letters or digits")
        return self
