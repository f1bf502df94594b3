"""Lesion drawing: counts, soft labels, locations."""

from __future__ import annotations

import numpy as np
import pytest

from mscl.data.synthetic.anatomy import load_template, subject_anatomy
from mscl.data.synthetic.lesions import LesionMaps, draw_lesions, lesion_distribution
from mscl.data.synthetic.profiles import AnnotationStyle

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


def _draw_at_3mm(style: AnnotationStyle | None) -> LesionMaps:
    anatomy = load_template(3.0).anatomy
    return draw_lesions(
        anatomy,
        count_mean=8,
        median_ml=0.2,
        intensity_range=GAIN_RANGE,
        rng=np.random.default_rng(5),
        style=style,
    )


def test_the_default_style_labels_the_true_lesions() -> None:
    lesions = _draw_at_3mm(None)
    np.testing.assert_array_equal(lesions.annotation, lesions.label)


@pytest.mark.parametrize("border_mm", [0.75, -0.5])
def test_a_rater_border_moves_the_outline_and_not_the_image(border_mm: float) -> None:
    true = _draw_at_3mm(None)
    rated = _draw_at_3mm(AnnotationStyle(border_mm=border_mm))
    np.testing.assert_array_equal(rated.indicator, true.indicator)  # the image sees the same lesions
    np.testing.assert_array_equal(rated.gain, true.gain)
    wider = border_mm > 0
    assert ((rated.annotation >= true.label) if wider else (rated.annotation <= true.label)).all()
    true_voxels, rated_voxels = int((true.label >= 0.5).sum()), int((rated.annotation >= 0.5).sum())
    assert (rated_voxels > 1.2 * true_voxels) if wider else (rated_voxels < 0.85 * true_voxels)


def test_a_rater_leaves_small_lesions_unlabelled() -> None:
    true = _draw_at_3mm(None)
    rated = _draw_at_3mm(AnnotationStyle(min_lesion_ml=0.2))
    np.testing.assert_array_equal(rated.indicator, true.indicator)
    assert (rated.annotation <= true.label).all()
    kept = rated.annotation > 0
    np.testing.assert_array_equal(rated.annotation[kept], true.label[kept])  # kept lesions keep their outline
    assert 0 < int((rated.annotation >= 0.5).sum()) < int((true.label >= 0.5).sum())


def test_a_rater_leaves_a_whole_zone_unlabelled() -> None:
    true = _draw_at_3mm(None)
    rated = _draw_at_3mm(AnnotationStyle(skip_zones=frozenset({"periventricular"})))
    np.testing.assert_array_equal(rated.indicator, true.indicator)
    assert (rated.annotation <= true.label).all()
    kept = rated.annotation > 0
    np.testing.assert_array_equal(rated.annotation[kept], true.label[kept])
    dropped = (true.label >= 0.5) & (rated.annotation < 0.5)
    anatomy = load_template(3.0).anatomy
    assert dropped.any()
    # what is left unlabelled lies at the ventricles; the lesions labelled elsewhere are kept
    assert np.median(anatomy.ventricle_mm[dropped]) < np.median(
        anatomy.ventricle_mm[kept & (true.label >= 0.5)]
    )
    assert int((rated.annotation >= 0.5).sum()) > 0
