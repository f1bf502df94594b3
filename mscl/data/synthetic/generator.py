"""The synthetic multi-center dataset: one :class:`CaseJob` per (subject, contrast), built like real data.

Every case is a pure function of ``(seed, center, subject index, contrast)``: the subject's anatomy and
lesions come from a generator seeded with ``(seed, sha256(center), index, 0)`` (shared by all contrasts of
the subject), its acquisition from ``(seed, sha256(center), index, 1 + contrast index)``. Cases are then
cropped and normalised by the same function as real data (:func:`mscl.data.standardize.standardize_with_box`,
its foreground taken with the true lesions, the raters' label cut to the same box), so the dataset directory
is indistinguishable in form from a prepared BIDS dataset.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mscl.config import ExperimentConfig, Normalization
from mscl.data.build import CaseJob, build_dataset
from mscl.data.manifest import DatasetManifest, PreprocessingRecord, SourceRecord
from mscl.data.split import center_seed
from mscl.data.standardize import preprocessing_record, standardize_with_box
from mscl.data.synthetic.acquisition import TissueFractions, acquire
from mscl.data.synthetic.anatomy import load_template, subject_anatomy
from mscl.data.synthetic.lesions import draw_lesions, lesion_distribution
from mscl.data.synthetic.profiles import CONTRAST_STREAMS, CenterProfile, Contrast, SyntheticConfig
from mscl.data.writer import PreparedCase
from mscl.errors import ConfigError

GENERATOR = "mscl.data.synthetic"
GENERATOR_VERSION = "3"
"""2: center profiles from the config (``synthetic.centers``), nonlinear response, rims, in-plane blur.
3: each center's annotation style (``synthetic.centers.<name>.annotation``) draws its labels."""


def subject_count(paper_subjects: int, cfg: SyntheticConfig) -> int:
    """``clamp(round(paper_subjects * count_scale), min_per_center, max_per_center)``."""
    count = max(round(paper_subjects * cfg.count_scale), cfg.min_per_center)
    return min(count, cfg.max_per_center) if cfg.max_per_center is not None else count


def subject_id(center: str, index: int) -> str:
    """``sub-<center><index+1:03d>``, e.g. ``sub-bwh001``."""
    return f"sub-{center.lower()}{index + 1:03d}"


def plan_jobs(cfg: ExperimentConfig, centers: list[str] | None = None) -> list[CaseJob]:
    """One job per (subject, contrast) of the chosen centers (all by default), in the order of
    ``synthetic.centers`` (the paper's, for the shipped profiles).

    Raises:
        ConfigError: when ``centers`` names an unknown center.
    """
    profiles = cfg.synthetic.centers
    chosen = _chosen_centers(profiles, centers)
    jobs = []
    for name, profile in profiles.items():
        if name not in chosen:
            continue
        for index in range(subject_count(profile.paper_subjects, cfg.synthetic)):
            for contrast in profile.contrasts:
                kwargs = {
                    "center": name,
                    "profile": profile,
                    "index": index,
                    "contrast": contrast,
                    "spacing": cfg.synthetic.spacing_mm,
                    "seed": cfg.synthetic.seed,
                    "crop_margin_mm": cfg.data.crop_margin_mm,
                    "normalization": cfg.data.normalization,
                }
                jobs.append(CaseJob(subject_id(name, index), name, contrast, make_case, kwargs))
    return jobs


def make_case(
    center: str,
    profile: CenterProfile,
    index: int,
    contrast: Contrast,
    spacing: float,
    seed: int,
    crop_margin_mm: float,
    normalization: Normalization,
) -> PreparedCase:
    """Generate one (subject, contrast) case: anatomy, lesions, acquisition, crop and normalisation."""
    subject_rng = np.random.default_rng([*center_seed(seed, center), index, 0])
    anatomy = subject_anatomy(load_template(spacing), subject_rng)
    lesions = draw_lesions(
        anatomy,
        profile.lesion_count,
        profile.lesion_median_ml,
        profile.lesion_intensity,
        subject_rng,
        profile.annotation,
    )
    healthy = 1.0 - lesions.indicator
    rim = anatomy.rim_weight
    tissue = TissueFractions(
        csf=anatomy.csf,
        gm=anatomy.gm * healthy,
        wm=anatomy.wm * healthy * (1.0 - rim),
        rim=anatomy.wm * healthy * rim,
        lesion=lesions.label,
        mask=(anatomy.mask > 0.5).astype(np.float32),
        lesion_gain=lesions.gain,
    )
    stream = 1 + CONTRAST_STREAMS.index(contrast)
    acquisition_rng = np.random.default_rng([*center_seed(seed, center), index, stream])
    image = acquire(tissue, profile, contrast, spacing, acquisition_rng)
    voxels = (spacing, spacing, spacing)
    # The scanner's crop and intensities follow the true lesions; the raters' outline is cut to the same box.
    image, _, box = standardize_with_box(
        torch.from_numpy(image), torch.from_numpy(lesions.label), voxels, crop_margin_mm, normalization
    )
    label = np.clip(lesions.annotation[box], 0.0, 1.0)
    return PreparedCase(
        subject=subject_id(center, index),
        center=center,
        contrast=contrast,
        image=image,
        label=label,
        spacing=voxels,
    )


def generate_dataset(
    out: Path,
    cfg: ExperimentConfig,
    overwrite: bool = False,
    quiet: bool = False,
    centers: list[str] | None = None,
) -> DatasetManifest:
    """Generate the synthetic multi-center dataset into the dataset directory ``out``.

    Args:
        out: Dataset directory to write (atomically).
        cfg: ``cfg.synthetic`` drives the generator; ``cfg.data`` gives format, workers, crop margin,
            normalisation and the split.
        overwrite: Replace an existing ``out``.
        quiet: No progress bar.
        centers: Subset of centers to generate (default: every center of ``synthetic.centers``).

    Raises:
        ConfigError: for an unknown center.
        DataError: when ``out`` exists without ``overwrite`` or cannot be written.
    """
    jobs = plan_jobs(cfg, centers)
    chosen = {job.center for job in jobs}
    spacing = cfg.synthetic.spacing_mm
    if cfg.data.workers > 1 and (overwrite or not Path(out).exists()):
        load_template(spacing)  # loaded once here, inherited by forked workers
    preprocessing: PreprocessingRecord = preprocessing_record(cfg.data).model_copy(
        update={"spacing": (spacing, spacing, spacing)}
    )
    return build_dataset(
        jobs,
        out=out,
        name=f"synthetic-seed{cfg.synthetic.seed}",
        fmt=cfg.data.format,
        source=source_record(cfg.synthetic, [name for name in cfg.synthetic.centers if name in chosen]),
        preprocessing=preprocessing,
        test_fraction=cfg.data.test_fraction,
        split_seed=cfg.data.split_seed,
        workers=cfg.data.workers,
        overwrite=overwrite,
        quiet=quiet,
    )


def source_record(cfg: SyntheticConfig, centers: list[str]) -> SourceRecord:
    """``dataset.json``'s source: generator, version, seed, settings, center profiles, lesion distribution."""
    settings = cfg.model_dump(mode="json", exclude={"centers"})
    return SourceRecord(
        kind="synthetic",
        generator=GENERATOR,
        generator_version=GENERATOR_VERSION,
        seed=cfg.seed,
        profiles={
            "settings": settings,
            "lesions": lesion_distribution(),
            "centers": {name: cfg.centers[name].model_dump(mode="json") for name in centers},
        },
    )


def _chosen_centers(profiles: dict[str, CenterProfile], centers: list[str] | None) -> set[str]:
    if centers is None:
        return set(profiles)
    unknown = sorted(set(centers) - set(profiles))
    if unknown:
        raise ConfigError(
            f"centers: unknown center(s) {', '.join(unknown)}; choose from {', '.join(profiles)}"
        )
    return set(centers)
