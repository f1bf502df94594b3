"""Soft Dice loss on soft labels (SoftSeg, Gros et al. 2021).

Prediction ``p`` and label ``t`` stay continuous in ``[0, 1]`` (no thresholding)::

    dice = (2 * sum(p * t) + smooth) / (sum(p) + sum(t) + smooth),    loss = 1 - dice

With ``batch_dice`` (default, as in SoftSeg) the sums run over the whole batch, so patches without lesion
do not each demand an exactly empty prediction; otherwise Dice is computed per sample and averaged.
The ``smooth`` term makes empty labels sane: empty label and empty prediction give loss 0, an empty label
with a prediction of total mass ``m`` gives ``m / (m + smooth)``.
"""

from __future__ import annotations

import torch

DICE_SMOOTH = 1.0


def soft_dice_loss(
    pred: torch.Tensor, target: torch.Tensor, *, batch_dice: bool = True, smooth: float = DICE_SMOOTH
) -> torch.Tensor:
    """Soft Dice loss of ``pred`` against soft ``target``, both ``(B, C, *spatial)``, computed in float32.

    Args:
        pred: Soft prediction in ``[0, 1]``.
        target: Soft label in ``[0, 1]``, same shape.
        batch_dice: Sum over the whole batch (one Dice) instead of averaging per-sample Dice.
        smooth: Added to numerator and denominator; keeps empty labels finite.

    Returns:
        A scalar: 0 for a perfect binary match, close to 1 for disjoint masks.
    """
    if pred.shape != target.shape:
        raise ValueError(f"prediction shape {tuple(pred.shape)} != label shape {tuple(target.shape)}")
    p = pred.float().flatten(1)
    t = target.float().flatten(1)
    dims: tuple[int, ...] = (0, 1) if batch_dice else (1,)
    intersection = (p * t).sum(dim=dims)
    total = p.sum(dim=dims) + t.sum(dim=dims)
    dice = (2 * intersection + smooth) / (total + smooth)
    return 1 - dice.mean()
