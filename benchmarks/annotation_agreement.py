"""How far each synthetic center's raters are from the true lesions, and from each other.

    .venv/bin/python benchmarks/annotation_agreement.py [--preset quick] [--config benchmarks/raters.yaml] \
        [--subjects 4] [--set KEY=VALUE ...]

For each center of the preset, the first N subjects' cases are generated twice: with the center's
annotation style (what ``mscl prepare --synthetic`` stores) and with the default style (the true lesions).
Both share the image and the crop, so the labels compare voxel for voxel. Printed per center: the lesion
volume the raters label against the true one, the Dice (label >= 0.5) between them, and the Dice a rater
of every other center's style would reach against this center's raters on the same lesions. Real
inter-rater Dice for MS lesions is far from 1, mostly through borders and small lesions; compare with it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from mscl.config import ExperimentConfig, load_config
from mscl.data.synthetic.generator import make_case
from mscl.data.synthetic.profiles import AnnotationStyle, CenterProfile
from mscl.metrics.base import ScoredCase
from mscl.metrics.overlap import Dice


def key(style: AnnotationStyle) -> tuple[float, float, tuple[str, ...]]:
    return style.border_mm, style.min_lesion_ml, tuple(sorted(style.skip_zones))


def center_labels(
    center: str, profile: CenterProfile, style: AnnotationStyle, subjects: int, cfg: ExperimentConfig
) -> list[np.ndarray]:
    """The stored labels of the center's first ``subjects`` cases (its first contrast) under ``style``."""
    rated = profile.model_copy(update={"annotation": style})
    contrast = next(iter(profile.contrasts))
    return [
        make_case(
            center,
            rated,
            index,
            contrast,
            cfg.synthetic.spacing_mm,
            cfg.synthetic.seed,
            cfg.data.crop_margin_mm,
            cfg.data.normalization,
        ).label
        for index in range(subjects)
    ]


def mean_dice(first: list[np.ndarray], second: list[np.ndarray], cfg: ExperimentConfig) -> float:
    """Mean Dice (mscl's metric, labels at ``eval.threshold``) of two raters' labels of the same cases."""
    spacing = (cfg.synthetic.spacing_mm,) * 3
    dice = Dice(cfg.eval)
    return float(
        np.mean([dice.score(ScoredCase(a, b, spacing, cfg.eval)) for a, b in zip(first, second, strict=True)])
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--config", type=Path, help="YAML layer with the styles, e.g. benchmarks/raters.yaml")
    parser.add_argument("--subjects", type=int, default=4)
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a setting, e.g. synthetic.centers.BWH.annotation.border_mm=1 (repeatable)",
    )
    args = parser.parse_args()
    cfg = load_config(args.preset, args.config, overrides=args.overrides)
    styles = {name: profile.annotation for name, profile in cfg.synthetic.centers.items()}
    print(
        f"{'center':8} {'border mm':>9} {'min mL':>6} {'skips':<14} {'labelled/true mL':>17} "
        f"{'Dice vs true':>12}  Dice vs the other centers' raters (mean, min)"
    )
    voxel_ml = cfg.synthetic.spacing_mm**3 / 1000.0
    for name, profile in cfg.synthetic.centers.items():
        by_style = {
            key(style): center_labels(name, profile, style, args.subjects, cfg)
            for style in {key(s): s for s in [AnnotationStyle(), *styles.values()]}.values()
        }
        truth, rated = by_style[key(AnnotationStyle())], by_style[key(styles[name])]
        others = [
            mean_dice(by_style[key(style)], rated, cfg)
            for other_name, style in styles.items()
            if other_name != name
        ]
        true_ml = sum(float(t.sum()) for t in truth) * voxel_ml / len(truth)
        rated_ml = sum(float(r.sum()) for r in rated) * voxel_ml / len(rated)
        style = styles[name]
        print(
            f"{name:8} {style.border_mm:>+9.2f} {style.min_lesion_ml:>6.2f} "
            f"{','.join(key(style)[2]) or '-':<14} "
            f"{rated_ml:>8.2f}/{true_ml:<8.2f} {mean_dice(truth, rated, cfg):>12.2f}  "
            f"{np.mean(others):.2f}, {np.min(others):.2f}"
        )


if __name__ == "__main__":
    main()
