"""The ICBM152-derived template and the per-subject warp (6 mm grid, cached)."""

from __future__ import annotations

import numpy as np

from mscl.data.synthetic.anatomy import (
    DEEP,
    JUXTACORTICAL,
    PERIVENTRICULAR,
    load_template,
    subject_anatomy,
)


def test_template_tissues_partition_the_brain() -> None:
    anatomy = load_template(6.0).anatomy
    total = anatomy.gm + anatomy.wm + anatomy.csf
    assert total.max() <= 1.0 + 1e-4
    assert 1000 < (total > 0.5).sum() * 6.0**3 / 1000 < 2500  # brain volume in mL
    assert load_template(6.0) is load_template(6.0)


def test_template_has_every_lesion_zone_and_deep_csf_ventricles() -> None:
    anatomy = load_template(6.0).anatomy
    for zone in (PERIVENTRICULAR, DEEP, JUXTACORTICAL):
        assert (anatomy.zone == zone).sum() >= 5
    assert (anatomy.wm[anatomy.zone > 0] >= 0.5).all()


def test_subject_warp_is_seeded_and_varies() -> None:
    template = load_template(6.0)
    a = subject_anatomy(template, np.random.default_rng(1))
    b = subject_anatomy(template, np.random.default_rng(1))
    c = subject_anatomy(template, np.random.default_rng(2))
    np.testing.assert_array_equal(a.wm, b.wm)
    np.testing.assert_array_equal(a.zone, b.zone)
    assert not np.array_equal(a.wm, c.wm)
    assert a.shape == template.anatomy.shape
    assert a.csf.min() >= 0.0 and a.mask.max() <= 1.0
