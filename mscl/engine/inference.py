"""Sliding-window inference of a whole volume (MONAI), as in the paper's evaluation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import numpy as np
import torch
from monai.inferers import sliding_window_inference
from torch import nn

from mscl.engine.device import Precision, autocast_context


def predict_volume(
    model: nn.Module,
    image: np.ndarray | torch.Tensor,
    patch_size: Sequence[int],
    overlap: float,
    window_batch: int,
    device: torch.device,
    precision: Precision = "auto",
) -> np.ndarray:
    """Soft prediction of a 3D volume with overlapping windows.

    Windows of ``patch_size`` are blended with equal weights; a volume smaller than a window is zero-padded
    for the model and the prediction cropped back. The model runs in eval mode (its previous mode is
    restored afterwards) under :func:`torch.inference_mode`, with bf16 autocast on CUDA (see
    :func:`mscl.engine.device.autocast_dtype`). Deterministic on CPU.

    Args:
        model: Network mapping ``(B, 1, *patch)`` to soft predictions of the same shape.
        image: ``(D, H, W)`` intensities.
        patch_size: Window size.
        overlap: Fraction of a window shared with its neighbour, in ``[0, 1)``.
        window_batch: Windows per forward pass.
        device: Where the model runs (the model is moved there).
        precision: ``train.precision``-style choice of autocast.

    Returns:
        float32 prediction of ``image``'s shape.
    """
    if image.ndim != 3:
        raise ValueError(f"expected a 3D volume, got shape {tuple(image.shape)}")
    volume = torch.as_tensor(image).to(device=device, dtype=torch.float32)[None, None]
    was_training = model.training
    model.to(device).eval()
    try:
        with torch.inference_mode(), autocast_context(device, precision):
            prediction = cast(
                torch.Tensor,
                sliding_window_inference(
                    volume,
                    roi_size=tuple(patch_size),
                    sw_batch_size=window_batch,
                    predictor=model,
                    overlap=overlap,
                ),
            )
    finally:
        model.train(was_training)
    return prediction[0, 0].float().cpu().numpy()
