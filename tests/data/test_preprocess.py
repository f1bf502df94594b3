"""TorchIO preprocessing of one pair: orientation, resampling, crop, normalisation, soft labels, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mscl.config import DataConfig
from mscl.data.preprocess import preprocess_case
from mscl.data.sources import SourceCase
from mscl.errors import DataError

from .volumes import SHAPE, head_and_lesion

NO_CROP = 100.0


def source_of(image: Path, label: Path) -> SourceCase:
    return SourceCase("s1", "FLAIR", "X", image, label)


def written(write_nifti, tmp_path: Path, image, label, affine=None) -> SourceCase:
    return source_of(
        write_nifti(tmp_path / "image.nii.gz", image, affine),
        write_nifti(tmp_path / "label.nii.gz", label, affine),
    )


def test_lps_input_comes_out_ras(tmp_path: Path, write_nifti) -> None:
    image, label = head_and_lesion()
    image[1, 2, 3] = 1000.0  # marker: 1 voxel left-to-right flip and anterior-posterior flip expected
    lps = np.diag([-1.0, -1.0, 1.0, 1.0])
    case = preprocess_case(
        written(write_nifti, tmp_path, image, label, lps),
        DataConfig(spacing=(1, 1, 1), crop_margin_mm=NO_CROP),
    )
    assert case.image.shape == SHAPE
    marker = np.unravel_index(np.argmax(case.image), case.image.shape)
    assert tuple(int(i) for i in marker) == (SHAPE[0] - 1 - 1, SHAPE[1] - 1 - 2, 3)


def test_anisotropic_input_is_resampled_keeping_its_extent(tmp_path: Path, write_nifti) -> None:
    image, label = head_and_lesion()
    spacing_in = np.array([1.0, 1.0, 3.0])
    spacing_out = (1.5, 1.5, 1.5)
    case = preprocess_case(
        written(write_nifti, tmp_path, image, label, np.diag([*spacing_in, 1.0])),
        DataConfig(spacing=spacing_out, crop_margin_mm=NO_CROP),
    )
    assert case.spacing == spacing_out
    extent_in = np.array(SHAPE) * spacing_in
    extent_out = np.array(case.image.shape) * np.array(spacing_out)
    assert np.all(np.abs(extent_out - extent_in) <= np.array(spacing_out))
    assert case.label.shape == case.image.shape


def test_soft_labels_survive_and_are_clipped(tmp_path: Path, write_nifti) -> None:
    image, label = head_and_lesion()
    label[label == 1.0] = 1.0005  # within data.label_tolerance: clipped to 1
    case = preprocess_case(written(write_nifti, tmp_path, image, label), DataConfig(crop_margin_mm=NO_CROP))
    assert case.label.max() == 1.0
    assert case.label.min() == 0.0
    assert np.isclose(case.label, 0.4).sum() == (label == 0.4).sum()


def test_resampled_labels_stay_soft(tmp_path: Path, write_nifti) -> None:
    image, label = head_and_lesion()
    label[label > 0] = 1.0  # a hard mask becomes soft at its borders after linear resampling
    case = preprocess_case(
        written(write_nifti, tmp_path, image, label),
        DataConfig(spacing=(1.7, 1.7, 1.7), crop_margin_mm=NO_CROP),
    )
    assert ((case.label > 0.01) & (case.label < 0.99)).any()
    assert case.label.min() >= 0 and case.label.max() <= 1


def test_crop_keeps_foreground_box_plus_margin(tmp_path: Path, write_nifti) -> None:
    image = np.zeros(SHAPE, np.float32)
    rng = np.random.default_rng(0)
    image[3:7, 4:9, 2:5] = 50 + rng.random((4, 5, 3))
    label = np.zeros(SHAPE, np.float32)
    label[8, 4, 2] = 0.5  # lesion outside the bright box still counts as foreground
    case = preprocess_case(written(write_nifti, tmp_path, image, label), DataConfig(crop_margin_mm=1.0))
    assert case.image.shape == (4 + 2 + 2, 5 + 2, 3 + 2)
    assert case.label.sum() == pytest.approx(0.5)


@pytest.mark.parametrize("normalization", ["zscore", "percentile"])
def test_intensity_normalisation_over_foreground(tmp_path: Path, write_nifti, normalization: str) -> None:
    image, label = head_and_lesion()
    data = DataConfig(crop_margin_mm=NO_CROP, normalization=normalization)
    case = preprocess_case(written(write_nifti, tmp_path, image, label), data)
    foreground = case.image[image > 0]
    if normalization == "zscore":
        assert foreground.mean() == pytest.approx(0, abs=1e-4)
        assert foreground.std() == pytest.approx(1, abs=1e-2)
    else:
        assert case.image.min() == 0 and case.image.max() == 1


@pytest.mark.parametrize(
    ("which", "value", "message"),
    [
        ("image", np.nan, r"image\.nii\.gz: 1 NaN or infinite voxel"),
        ("label", np.inf, r"label\.nii\.gz: 1 NaN or infinite voxel"),
        ("label", 1.5, r"label\.nii\.gz: label values span \[0, 1\.5\], outside \[0, 1\]"),
        ("label", -0.01, r"label\.nii\.gz: label values span \[-0\.01, 1\]"),
    ],
)
def test_bad_voxels_name_the_file(
    tmp_path: Path, write_nifti, which: str, value: float, message: str
) -> None:
    arrays = dict(zip(("image", "label"), head_and_lesion(), strict=True))
    arrays[which][0, 0, 0] = value
    with pytest.raises(DataError, match=message):
        preprocess_case(written(write_nifti, tmp_path, arrays["image"], arrays["label"]), DataConfig())


def test_truncated_gzip_is_a_data_error(tmp_path: Path, write_nifti) -> None:
    source = written(write_nifti, tmp_path, *head_and_lesion())
    compressed = source.image.read_bytes()
    source.image.write_bytes(compressed[: len(compressed) // 2])
    with pytest.raises(DataError, match=r"image\.nii\.gz: cannot read voxels, file truncated or corrupt"):
        preprocess_case(source, DataConfig())


def test_constant_image_has_no_foreground(tmp_path: Path, write_nifti) -> None:
    image = np.full(SHAPE, 7.0, np.float32)
    with pytest.raises(DataError, match="no foreground"):
        preprocess_case(written(write_nifti, tmp_path, image, np.zeros(SHAPE, np.float32)), DataConfig())
