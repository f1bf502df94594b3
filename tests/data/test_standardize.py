"""Foreground crop and intensity normalisation: equal to TorchIO's transforms, without importing TorchIO."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch
import torchio as tio

from mscl.config import DataConfig
from mscl.data.standardize import (
    bounding_box,
    foreground_mask,
    normalize_intensity,
    preprocessing_record,
    standardize,
)
from mscl.errors import DataError


@pytest.fixture
def head() -> tuple[torch.Tensor, torch.Tensor]:
    """A noisy bright ellipsoid off-centre in a dark volume, with one soft lesion."""
    rng = np.random.default_rng(0)
    z, y, x = np.mgrid[:20, :24, :18]
    inside = ((z - 11) / 7) ** 2 + ((y - 10) / 8) ** 2 + ((x - 9) / 5) ** 2 < 1
    image = np.where(inside, 100 + 20 * rng.standard_normal(inside.shape), rng.random(inside.shape))
    label = np.zeros(inside.shape, np.float32)
    label[11, 10, 8:11] = [0.3, 1.0, 0.6]
    return torch.from_numpy(image.astype(np.float32)), torch.from_numpy(label)


def torchio_reference(image: torch.Tensor, label: torch.Tensor, margin: int, kind: str) -> tuple:
    """What the TorchIO pipeline (Crop, then ZNormalization or RescaleIntensity on the mask) gives."""
    mask = foreground_mask(image, label)
    box = bounding_box(mask, [margin] * 3)
    crop = [b for axis, s in enumerate(box) for b in (s.start, image.shape[axis] - s.stop)]
    subject = tio.Subject(
        image=tio.ScalarImage(tensor=image[None]),
        label=tio.LabelMap(tensor=label[None]),
        foreground=tio.LabelMap(tensor=mask[None]),
    )
    normalize = (
        tio.ZNormalization(masking_method="foreground")
        if kind == "zscore"
        else tio.RescaleIntensity((0, 1), percentiles=(0.5, 99.5), masking_method="foreground")
    )
    subject = tio.Compose([tio.Crop(tuple(crop)), normalize])(subject)
    return subject.image.data[0].numpy(), subject.label.data[0].clamp(0, 1).numpy()


@pytest.mark.parametrize("kind", ["zscore", "percentile"])
@pytest.mark.parametrize("margin_mm", [0.0, 2.0, 50.0])
def test_equals_torchio(head, kind: str, margin_mm: float) -> None:
    image, label = head
    spacing = 2.0
    ours = standardize(image, label, (spacing,) * 3, margin_mm, kind)
    reference = torchio_reference(image, label, math.ceil(margin_mm / spacing), kind)
    assert ours[0].shape == reference[0].shape
    np.testing.assert_allclose(ours[0], reference[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(ours[1], reference[1])


def test_crop_keeps_the_margin_inside_the_volume(head) -> None:
    image, label = head
    cropped, _ = standardize(image, label, (1.0, 1.0, 1.0), 1.0, "zscore")
    assert cropped.shape == (2 * 7 - 1 + 2, 2 * 8 - 1 + 2, 2 * 5 - 1 + 2)
    whole, _ = standardize(image, label, (1.0, 1.0, 1.0), 100.0, "zscore")
    assert whole.shape == tuple(image.shape)


def test_percentile_rescale_spans_zero_to_one(head) -> None:
    image, label = head
    out = normalize_intensity(image, foreground_mask(image, label), "percentile")
    assert float(out.min()) == 0.0 and float(out.max()) == 1.0


@pytest.mark.parametrize("kind", ["zscore", "percentile"])
def test_constant_image_is_refused(kind: str) -> None:
    flat = torch.full((6, 6, 6), 3.0)
    with pytest.raises(DataError, match="no foreground"):
        standardize(flat, torch.zeros_like(flat), (1.0, 1.0, 1.0), 0.0, kind)


def test_synthetic_generation_does_not_import_torchio() -> None:
    code = (
        "import sys; import mscl.data.synthetic.generator; "
        "sys.exit(int('torchio' in sys.modules or 'SimpleITK' in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_preprocessing_record_describes_the_settings() -> None:
    record = preprocessing_record(DataConfig(spacing=(2, 2, 2), crop_margin_mm=4, normalization="percentile"))
    assert record.spacing == (2, 2, 2)
    assert record.orientation == "RAS"
    assert "+ 4 mm" in record.crop
    assert record.intensity_normalization.startswith("percentile")
