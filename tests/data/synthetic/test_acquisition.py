"""Center profiles and acquisition operators."""

from __future__ import annotations

import numpy as np
import pytest

from mscl.data.synthetic.acquisition import (
    CENTERS,
    FLAIR,
    T2W,
    TissueFractions,
    acquire,
    bias_field,
    rician,
    smooth_field,
)


def test_the_paper_centers_and_contrasts() -> None:
    assert {c.name: c.paper_subjects for c in CENTERS} == {
        "BWH": 80, "Karo": 51, "Milan": 47, "Rennes": 51, "NIH": 28, "Montp": 13, "UCSF": 12, "AMU": 8,
    }  # fmt: skip
    contrasts = {c.name: c.contrasts for c in CENTERS}
    assert contrasts.pop("Karo") == (FLAIR, T2W)
    assert contrasts.pop("Milan") == (T2W,)
    assert set(contrasts.values()) == {(FLAIR,)}


@pytest.mark.parametrize("profile", CENTERS, ids=lambda p: p.name)
def test_tissue_order_of_every_center(profile) -> None:
    for contrast in profile.contrasts:
        t = profile.tissue(contrast)
        if contrast == FLAIR:
            assert t.csf < t.wm < t.gm < t.lesion
        else:
            assert t.wm < t.gm < t.lesion < t.csf


def test_bias_field_is_smooth_positive_and_bounded() -> None:
    field = bias_field((10, 12, 8), 0.2, np.random.default_rng(0))
    assert field.shape == (10, 12, 8)
    assert field.min() > np.exp(-20 * 0.2) and field.max() < np.exp(20 * 0.2)
    assert np.abs(np.diff(np.log(field), axis=0)).max() < 0.5
    assert not np.allclose(field, 1.0)


def test_rician_noise_is_positive_with_the_given_spread() -> None:
    noisy = rician(np.full((40, 40, 40), 10.0, dtype=np.float32), 0.5, np.random.default_rng(0))
    assert noisy.min() >= 0
    assert abs(noisy.mean() - 10.0) < 0.05 and abs(noisy.std() - 0.5) < 0.05


def test_smooth_field_has_unit_spread_and_is_seeded() -> None:
    a = smooth_field((20, 16, 12), np.random.default_rng(3), frequencies=4)
    assert a.shape == (20, 16, 12)
    assert a.std() == pytest.approx(1.0, abs=1e-4)
    np.testing.assert_array_equal(a, smooth_field((20, 16, 12), np.random.default_rng(3), frequencies=4))
    assert not np.array_equal(a, smooth_field((20, 16, 12), np.random.default_rng(4), frequencies=4))


def test_acquire_makes_lesions_brightest_in_flair_and_csf_brightest_in_t2w() -> None:
    shape = (8, 8, 8)
    zeros, ones = np.zeros(shape, np.float32), np.ones(shape, np.float32)
    regions = {"csf": ones.copy(), "lesion": zeros.copy()}
    regions["csf"][4:] = 0
    regions["lesion"][4:] = 1
    tissue = TissueFractions(
        csf=regions["csf"], gm=zeros, wm=zeros, lesion=regions["lesion"], mask=ones, lesion_gain=ones
    )
    profile = CENTERS[1]  # Karo: both contrasts
    for contrast, lesion_brighter in ((FLAIR, True), (T2W, False)):
        image = acquire(tissue, profile, contrast, 1.0, np.random.default_rng(0))
        assert bool(image[4:].mean() > image[:4].mean()) is lesion_brighter
