"""Absolute volume difference in ml against hand-worked numbers."""

from __future__ import annotations

import numpy as np
import pytest

from mscl.config import EvalConfig
from mscl.metrics.base import ScoredCase
from mscl.metrics.volume import AbsoluteVolumeDifference

SHAPE = (12, 12, 12)


def score(pred: np.ndarray, label: np.ndarray, spacing: tuple[float, float, float]) -> float:
    cfg = EvalConfig()
    case = ScoredCase(pred.astype(np.float32), label.astype(np.float32), spacing, cfg)
    return AbsoluteVolumeDifference(cfg).score(case)


def test_anisotropic_spacing_in_ml() -> None:
    pred = np.zeros(SHAPE)
    pred[0, 0, :10] = 1.0
    label = np.zeros(SHAPE)
    label[5, 5, :4] = 1.0
    # |10 - 4| voxels * (1.0 * 1.2 * 3.0 mm^3 = 3.6 mm^3 = 0.0036 ml) = 0.0216 ml
    assert score(pred, label, (1.0, 1.2, 3.0)) == pytest.approx(0.0216)
    assert score(label, pred, (1.0, 1.2, 3.0)) == pytest.approx(0.0216)


def test_empty_sides() -> None:
    empty = np.zeros(SHAPE)
    blob = np.zeros(SHAPE)
    blob[:5, :5, :4] = 1.0  # 100 voxels
    assert score(empty, empty, (1.0, 1.0, 1.0)) == 0.0
    # 100 voxels * 2 mm^3 = 200 mm^3 = 0.2 ml
    assert score(empty, blob, (2.0, 1.0, 1.0)) == pytest.approx(0.2)
    assert score(blob, empty, (2.0, 1.0, 1.0)) == pytest.approx(0.2)


def test_counts_every_binarised_voxel() -> None:
    label = np.zeros(SHAPE)
    pred = np.zeros(SHAPE)
    pred[0, 0, 0] = pred[6, 6, 6] = 0.5  # isolated voxels, under any lesion minimum, at the threshold
    pred[3, 3, 3] = 0.49  # under the threshold
    # 2 voxels * 1 mm^3 = 0.002 ml
    assert score(pred, label, (1.0, 1.0, 1.0)) == pytest.approx(0.002)
