"""Lesion drawing: counts, soft labels, locations."""

from __future__ import annotations

import numpy as np
import pytest

from mscl.data.synthetic.anatomy import load_template, subject_anatomy
from mscl.data.synthetic.lesions import draw_lesions, lesion_distribution

GAIN_RANGE = (0.7, 1.1)


@pytest.mark.parametrize("seed", range(4))
def test_lesions_are_soft_inside_white_matter_and_visible_at_6mm(seed: int) -> None:
    rng = np.random.default_rng(seed)
    anatomy = subject_anatomy(load_template(6.0), rng)
    lesions = draw_lesions(anatomy, count_mean=6, median_ml=0.2, intensity_range=GAIN_RANGE, rng=rng)
    assert lesions.count >= 1
    assert lesions.label.min() >= 0.0 and lesions.label.max() <= 1.0
    assert (lesions.label <= lesions.indicator + 1e-6).all()
    assert (lesions.label >= 0.5).sum() >= 1
    assert ((lesions.label > 0) & (lesions.label < 1)).any()  # partial volume at borders
    voxels = lesions.label >= 0.5
    assert anatomy.wm[voxels].mean() > anatomy.gm[voxels].mean()
    low, high = GAIN_RANGE
    assert low - 1e-6 <= lesions.gain.min() and lesions.gain.max() <= high + 1e-6


def test_lesion_load_is_a_few_ml_at_3mm() -> None:
    anatomy = load_template(3.0).anatomy
    loads = []
    for seed in range(3):
        lesions = draw_lesions(
            anatomy, count_mean=8, median_ml=0.25, intensity_range=GAIN_RANGE, rng=np.random.default_rng(seed)
        )
        loads.append(lesions.label.sum() * 27 / 1000)
    assert 0.5 < np.median(loads) < 10


def test_distribution_is_recorded() -> None:
    recorded = lesion_distribution()
    assert set(recorded["zones"]) == {"periventricular", "deep", "juxtacortical"}
    assert sum(recorded["zones"].values()) == pytest.approx(1.0)
