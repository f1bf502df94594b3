"""Center profiles (validated settings) and acquisition operators."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mscl.config import load_config
from mscl.data.synthetic.acquisition import TissueFractions, acquire, bias_field, rician, smooth_field
from mscl.data.synthetic.profiles import FLAIR, T2W, AnnotationStyle, CenterProfile, shipped_centers
from mscl.errors import ConfigError

CENTERS = shipped_centers()


def test_the_paper_centers_and_contrasts() -> None:
    assert {name: c.paper_subjects for name, c in CENTERS.items()} == {
        "BWH": 80, "Karo": 51, "Milan": 47, "Rennes": 51, "NIH": 28, "Montp": 13, "UCSF": 12, "AMU": 8,
    }  # fmt: skip
    contrasts = {name: tuple(c.contrasts) for name, c in CENTERS.items()}
    assert contrasts.pop("Karo") == (FLAIR, T2W)
    assert contrasts.pop("Milan") == (T2W,)
    assert set(contrasts.values()) == {(FLAIR,)}


def test_every_preset_carries_the_shipped_centers_and_a_center_is_changed_by_an_override() -> None:
    for preset in ("tiny", "quick", "paper"):
        assert load_config(preset).synthetic.centers == CENTERS
    cfg = load_config("tiny", overrides=["synthetic.centers.Milan.noise=0.07"])
    assert cfg.synthetic.centers["Milan"].noise == 0.07
    assert list(cfg.synthetic.centers) == list(CENTERS)  # the others kept, in order


def test_shipped_raters_label_the_true_lesions_and_the_earlier_styles_layer_on_any_preset() -> None:
    assert all(c.annotation == AnnotationStyle() for c in CENTERS.values())
    raters = Path(__file__).parents[3] / "benchmarks" / "raters.yaml"
    for preset in ("tiny", "quick"):
        centers = load_config(preset, raters).synthetic.centers
        styled = {name for name, profile in centers.items() if profile.annotation != AnnotationStyle()}
        assert styled == {"Karo", "Rennes", "NIH", "Montp", "UCSF", "AMU"}
        assert centers["UCSF"].annotation == AnnotationStyle(border_mm=-0.5, min_lesion_ml=0.05)
        assert centers["UCSF"].model_copy(update={"annotation": AnnotationStyle()}) == CENTERS["UCSF"]


def test_the_center_profiles_are_not_mlflow_params() -> None:
    flat = load_config("tiny").flat()
    assert "synthetic.seed" in flat
    assert not [key for key in flat if key.startswith("synthetic.centers")]


@pytest.mark.parametrize(
    ("override", "culprit"),
    [
        ("synthetic.centers.Milan.contrasts.T2w.csf=1.5", "synthetic.centers.Milan: T2w needs"),
        ("synthetic.centers.BWH.contrasts.FLAIR.rim=3", "synthetic.centers.BWH: FLAIR needs"),
        ("synthetic.centers.BWH.gamma=0", "synthetic.centers.BWH.gamma"),
        (
            "synthetic.centers.BWH.contrasts={PD: {csf: 1, gm: 1, lesion: 2}}",
            "synthetic.centers.BWH.contrasts",
        ),
        ("synthetic.centers.BWH.lesion_intensity=[1.2, 0.8]", "lesion_intensity"),
        ("synthetic.centers={bad-name: {}}", "synthetic.centers"),
        ("synthetic.centers.UCSF.annotation.border_mm=3", "synthetic.centers.UCSF.annotation.border_mm"),
        (
            "synthetic.centers.BWH.annotation.skip_zones=[cortical]",
            "synthetic.centers.BWH.annotation.skip_zones",
        ),
    ],
)
def test_an_invalid_profile_names_its_culprit(override: str, culprit: str) -> None:
    with pytest.raises(ConfigError, match=culprit.replace(".", r"\.")):
        load_config("tiny", overrides=[override])


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


def _halves(first: str, second: str, shape: tuple[int, int, int] = (8, 8, 8)) -> TissueFractions:
    """Tissue fractions with ``first`` in the lower half along x and ``second`` in the upper half."""
    maps = {name: np.zeros(shape, np.float32) for name in ("csf", "gm", "wm", "rim", "lesion")}
    maps[first][: shape[0] // 2] = 1
    maps[second][shape[0] // 2 :] = 1
    ones = np.ones(shape, np.float32)
    return TissueFractions(**maps, mask=ones, lesion_gain=ones)


def _quiet(profile: CenterProfile, **changes: object) -> CenterProfile:
    """The profile without noise, bias or ghosting (deterministic intensities), with ``changes``."""
    return profile.model_copy(update={"noise": 0.0, "bias": 0.0, "ghosting": 0.0, **changes})


def _ratio(image: np.ndarray) -> float:
    """Mean of the upper half over the mean of the lower half (x axis)."""
    half = image.shape[0] // 2
    return float(image[half:].mean() / image[:half].mean())


def test_acquire_makes_lesions_brightest_in_flair_and_csf_brightest_in_t2w() -> None:
    profile = CENTERS["Karo"]
    for contrast, lesion_brighter in ((FLAIR, True), (T2W, False)):
        image = acquire(_halves("csf", "lesion"), profile, contrast, 1.0, np.random.default_rng(0))
        assert bool(_ratio(image) > 1) is lesion_brighter


def test_tissue_intensities_and_the_nonlinear_response_follow_the_profile() -> None:
    profile = _quiet(CENTERS["Rennes"], gamma=1.0)
    rng = np.random.default_rng(0)
    flair = profile.contrasts[FLAIR]
    linear = _ratio(acquire(_halves("wm", "lesion"), profile, FLAIR, 1.0, rng))
    assert linear == pytest.approx(flair.lesion, rel=0.05)  # texture: a 4 % field
    rim = _ratio(acquire(_halves("wm", "rim"), profile, FLAIR, 1.0, rng))
    assert rim == pytest.approx(flair.rim, rel=0.05)
    curved = _ratio(acquire(_halves("wm", "lesion"), _quiet(profile, gamma=1.5), FLAIR, 1.0, rng))
    assert curved == pytest.approx(flair.lesion**1.5, rel=0.07)


def test_a_lesion_gain_scales_the_contrast_over_white_matter() -> None:
    profile = _quiet(CENTERS["Rennes"], gamma=1.0)
    tissue = _halves("wm", "lesion")
    faint = TissueFractions(**{**tissue.__dict__, "lesion_gain": np.full(tissue.mask.shape, 0.5, np.float32)})
    ratio = _ratio(acquire(faint, profile, FLAIR, 1.0, np.random.default_rng(0)))
    assert ratio == pytest.approx(1 + 0.5 * (profile.contrasts[FLAIR].lesion - 1), rel=0.05)


@pytest.mark.parametrize(("key", "axes_blurred"), [("slice_mm", {0}), ("inplane_mm", {1, 2})])
def test_thick_slices_blur_along_their_axis_and_coarse_inplane_resolution_across_it(
    key: str, axes_blurred: set[int]
) -> None:
    profile = _quiet(CENTERS["BWH"], slice_axis=0, **{key: 5.0})
    point = np.zeros((15, 15, 15), np.float32)
    point[7, 7, 7] = 1
    ones = np.ones_like(point)
    zeros = np.zeros_like(point)
    tissue = TissueFractions(
        csf=zeros, gm=zeros, wm=zeros, rim=zeros, lesion=point, mask=ones, lesion_gain=ones
    )
    image = acquire(tissue, profile, FLAIR, 1.0, np.random.default_rng(0))
    for axis in range(3):
        neighbour = [7, 7, 7]
        neighbour[axis] = 8
        assert bool(image[tuple(neighbour)] > 0.05 * image[7, 7, 7]) is (axis in axes_blurred)
