"""The spatial path of ``mscl predict`` with an "identity-like" model (the lesion is the brightest part):
masks come back on the scan's own grid, and the lesion at the same world coordinates."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from mscl.config import DataConfig, EvalConfig, ModelConfig
from mscl.data.preprocess import preprocess_image, read_volume
from mscl.predict.segmenter import Segmenter
from mscl.predict.settings import SegmenterSettings
from tests.predict.scans import GRIDS, INT16_INTER, INT16_SLOPE, LESION_MM, truth, world_of, write_scan


class Brightest(torch.nn.Module):
    """Lesion probability from the normalised intensity alone: ~1 far above the head's z-scores."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(4.0 * (x - 3.0))


def brightest_segmenter(spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> Segmenter:
    settings = SegmenterSettings(
        model=ModelConfig(),
        data=DataConfig(spacing=spacing),
        patch_size=(16, 16, 16),
        precision="fp32",
        eval=EvalConfig(),
        contrasts=["FLAIR"],
        centers=["A"],
        run_id="none",
        stage=1,
        dataset_preprocessing={},
    )
    return Segmenter(Brightest(), settings, device="cpu")


@pytest.mark.parametrize("kind", sorted(GRIDS))
@pytest.mark.parametrize("model_spacing", [(1.0, 1.0, 1.0), (1.5, 2.0, 1.2)])
def test_the_lesion_comes_back_at_its_world_position(
    kind: str, model_spacing: tuple[float, float, float], tmp_path: Path
) -> None:
    scan = write_scan(tmp_path / "scan.nii.gz", kind)
    image, affine = read_volume(tmp_path / "scan.nii.gz")
    segmenter = brightest_segmenter(model_spacing)
    mask = segmenter.mask(segmenter.segment(image, affine))
    assert mask.shape == scan.shape
    _, lesion = truth(scan.shape, scan.affine)
    dice = 2 * np.logical_and(mask, lesion).sum() / (mask.sum() + lesion.sum())
    assert dice > 0.75, dice
    centroid = world_of(scan.shape, scan.affine)[mask.astype(bool)].mean(axis=0)
    assert np.linalg.norm(centroid - LESION_MM) < 1.0, centroid


def test_the_test_scans_are_off_the_training_grid(tmp_path: Path) -> None:
    """What the test above relies on: LPS axes, anisotropic voxels, int16 storage with scaling."""
    lps = write_scan(tmp_path / "a.nii.gz", "lps")
    assert nib.aff2axcodes(lps.affine) == ("L", "P", "S")
    assert len(set(write_scan(tmp_path / "b.nii.gz", "anisotropic").header.get_zooms())) == 3
    scaled = write_scan(tmp_path / "c.nii.gz", "int16-scaled")
    assert scaled.get_data_dtype() == np.int16
    assert (scaled.dataobj.slope, scaled.dataobj.inter) == (INT16_SLOPE, INT16_INTER)


def test_the_inverse_refuses_a_prediction_of_another_shape(tmp_path: Path) -> None:
    write_scan(tmp_path / "scan.nii.gz", "lps")
    image, affine = read_volume(tmp_path / "scan.nii.gz")
    cropped, grid = preprocess_image(image, affine, DataConfig())
    assert grid.cropped_shape == cropped.shape
    with pytest.raises(ValueError, match="cropped"):
        grid.to_source(cropped[1:])
