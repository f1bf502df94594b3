"""Soft Dice loss on hand-made inputs."""

from __future__ import annotations

import pytest
import torch

from mscl.engine.loss import soft_dice_loss


def _t(*values: float) -> torch.Tensor:
    return torch.tensor(values).view(1, 1, -1)


def test_perfect_binary_prediction_scores_zero() -> None:
    mask = torch.zeros(2, 1, 4, 4, 4)
    mask[:, :, 1:3, 1:3, 1:3] = 1
    assert soft_dice_loss(mask, mask).item() == 0.0


def test_disjoint_masks_score_almost_one() -> None:
    pred = torch.zeros(1, 1, 20, 20, 20)
    label = torch.zeros_like(pred)
    pred[..., :10] = 1
    label[..., 10:] = 1
    assert soft_dice_loss(pred, label).item() == pytest.approx(1 - 1 / 8001)


def test_hand_computed_values() -> None:
    assert soft_dice_loss(_t(1, 1, 0, 0), _t(1, 0, 0, 0)).item() == pytest.approx(1 - 3 / 4)
    assert soft_dice_loss(_t(0.5, 0.5), _t(1.0, 0.5)).item() == pytest.approx(1 - (2 * 0.75 + 1) / (2.5 + 1))


def test_empty_label_and_prediction_score_zero_and_false_positives_cost() -> None:
    empty = torch.zeros(1, 1, 8)
    assert soft_dice_loss(empty, empty).item() == 0.0
    assert soft_dice_loss(_t(1, 1, 1, 0), _t(0, 0, 0, 0)).item() == pytest.approx(3 / 4)


def test_batch_dice_pools_samples_and_per_sample_averages() -> None:
    pred = torch.tensor([[1.0, 1.0], [0.0, 0.0]]).view(2, 1, 2)
    label = torch.tensor([[1.0, 1.0], [1.0, 1.0]]).view(2, 1, 2)
    assert soft_dice_loss(pred, label).item() == pytest.approx(1 - 5 / 7)
    assert soft_dice_loss(pred, label, batch_dice=False).item() == pytest.approx(1 - (1 + 1 / 3) / 2)


def test_shape_mismatch_is_refused() -> None:
    with pytest.raises(ValueError, match="shape"):
        soft_dice_loss(torch.zeros(1, 1, 2), torch.zeros(1, 1, 3))
