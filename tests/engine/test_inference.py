"""Sliding-window prediction of whole volumes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from mscl.config import ModelConfig
from mscl.engine.inference import predict_volume
from mscl.models.unet import build_model

CPU = torch.device("cpu")


class _Double(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2 * x


@pytest.mark.parametrize("shape", [(20, 18, 17), (5, 9, 6)])
def test_prediction_covers_the_volume_including_small_ones(shape: tuple[int, int, int]) -> None:
    image = np.random.default_rng(0).normal(size=shape).astype(np.float16)
    out = predict_volume(_Double(), image, (8, 8, 8), overlap=0.25, window_batch=3, device=CPU)
    assert out.shape == shape
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, 2 * image.astype(np.float32), rtol=1e-6, atol=1e-6)


def test_unet_prediction_is_deterministic_and_restores_training_mode() -> None:
    model = build_model(ModelConfig(channels=(4, 8, 16), num_res_units=1, dropout=0.5), seed=0)
    model.train()
    image = torch.randn(18, 16, 20, generator=torch.Generator().manual_seed(1))
    first = predict_volume(model, image, (16, 16, 16), overlap=0.5, window_batch=2, device=CPU)
    again = predict_volume(model, image, (16, 16, 16), overlap=0.5, window_batch=4, device=CPU)
    assert first.shape == (18, 16, 20)
    np.testing.assert_array_equal(first, again)
    assert model.training
    assert first.min() >= 0.0 and first.max() <= 1.0


def test_non_3d_input_is_refused() -> None:
    with pytest.raises(ValueError, match="3D"):
        predict_volume(_Double(), np.zeros((1, 4, 4, 4)), (4, 4, 4), 0.25, 1, CPU)
