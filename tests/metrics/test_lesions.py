"""Lesion matching and lesion-wise metrics: hand-built 12^3 volumes, and a pure-Python flood fill."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from mscl.config import EvalConfig
from mscl.metrics.base import ScoredCase
from mscl.metrics.lesions import (
    LesionF1,
    LesionFalseDetectionRate,
    LesionMatch,
    LesionTruePositiveRate,
    match_lesions,
)

SHAPE = (12, 12, 12)
ISO = (1.0, 1.0, 1.0)
Voxel = tuple[int, int, int]


def empty() -> np.ndarray:
    return np.zeros(SHAPE, bool)


def box(*slices: slice | int) -> np.ndarray:
    mask = empty()
    mask[slices] = True
    return mask


def scores(
    pred: np.ndarray, label: np.ndarray, cfg: EvalConfig, spacing: tuple[float, float, float] = ISO
) -> tuple[float, float, float]:
    """(TPR, FDR, F1) of one case."""
    case = ScoredCase(pred.astype(np.float32), label.astype(np.float32), spacing, cfg)
    return tuple(m(cfg).score(case) for m in (LesionTruePositiveRate, LesionFalseDetectionRate, LesionF1))


def flood_fill(mask: np.ndarray, connectivity: int) -> list[set[Voxel]]:
    """The connected components of ``mask``, by a plain depth-first search."""
    max_steps = {6: 1, 18: 2, 26: 3}[connectivity]
    steps = [d for d in itertools.product((-1, 0, 1), repeat=3) if 0 < sum(map(abs, d)) <= max_steps]
    seen: set[Voxel] = set()
    found = []
    for start in itertools.product(*(range(n) for n in mask.shape)):
        if not mask[start] or start in seen:
            continue
        seen.add(start)
        stack, component = [start], set()
        while stack:
            voxel = stack.pop()
            component.add(voxel)
            for d in steps:
                n = (voxel[0] + d[0], voxel[1] + d[1], voxel[2] + d[2])
                inside = all(0 <= n[i] < mask.shape[i] for i in range(3))
                if inside and n not in seen and mask[n]:
                    seen.add(n)
                    stack.append(n)
        found.append(component)
    return found


def reference_match(
    pred: np.ndarray, label: np.ndarray, spacing: tuple[float, float, float], cfg: EvalConfig
) -> LesionMatch:
    """The matching rules, restated with Python sets."""
    voxel_mm3 = spacing[0] * spacing[1] * spacing[2]
    lesions = [
        [c for c in flood_fill(m, cfg.lesion_connectivity) if len(c) * voxel_mm3 >= cfg.lesion_min_volume_mm3]
        for m in (label, pred)
    ]
    label_voxels, pred_voxels = (set().union(*side) for side in lesions)
    detected = sum(len(c & pred_voxels) / len(c) > cfg.lesion_overlap for c in lesions[0])
    matched = sum(len(c & label_voxels) / len(c) > cfg.lesion_overlap for c in lesions[1])
    return LesionMatch(len(lesions[0]), detected, len(lesions[1]), len(lesions[1]) - matched)


@pytest.mark.parametrize("connectivity", [6, 18, 26])
def test_face_touching_cubes_are_one_lesion(connectivity: int) -> None:
    label = box(slice(2, 4), slice(2, 4), slice(2, 4)) | box(slice(2, 4), slice(2, 4), slice(4, 6))
    cfg = EvalConfig(lesion_connectivity=connectivity)
    assert len(flood_fill(label, connectivity)) == 1
    assert match_lesions(empty(), label, ISO, cfg).label_lesions == 1


@pytest.mark.parametrize(("connectivity", "lesions"), [(6, 2), (18, 1), (26, 1)])
def test_edge_touching_cubes(connectivity: int, lesions: int) -> None:
    # the cubes meet along the edge (3, 3, z) - (4, 4, z): an 18-neighbourhood step (1, 1, 0)
    label = box(slice(2, 4), slice(2, 4), slice(2, 4)) | box(slice(4, 6), slice(4, 6), slice(2, 4))
    cfg = EvalConfig(lesion_connectivity=connectivity)
    assert len(flood_fill(label, connectivity)) == lesions
    assert match_lesions(empty(), label, ISO, cfg).label_lesions == lesions


@pytest.mark.parametrize(("connectivity", "lesions"), [(6, 2), (18, 2), (26, 1)])
def test_corner_touching_cubes(connectivity: int, lesions: int) -> None:
    # the cubes meet at the corner (3, 3, 3) - (4, 4, 4) only: a 26-neighbourhood step (1, 1, 1)
    label = box(slice(2, 4), slice(2, 4), slice(2, 4)) | box(slice(4, 6), slice(4, 6), slice(4, 6))
    cfg = EvalConfig(lesion_connectivity=connectivity)
    assert len(flood_fill(label, connectivity)) == lesions
    assert match_lesions(empty(), label, ISO, cfg).label_lesions == lesions


def test_a_lesion_split_in_two_by_the_prediction() -> None:
    label = box(slice(4, 6), slice(4, 6), slice(2, 8))  # 2 * 2 * 6 = 24 voxels
    pred = box(slice(4, 6), slice(4, 6), slice(2, 4)) | box(slice(4, 6), slice(4, 6), slice(6, 8))  # 8 + 8
    cfg = EvalConfig(lesion_overlap=0.5)
    # label: 16 / 24 = 2/3 > 0.5 covered by the two predicted lesions together, so detected;
    # each predicted lesion lies wholly in the label (8 / 8 > 0.5), so neither is a false detection
    assert match_lesions(pred, label, ISO, cfg) == LesionMatch(1, 1, 2, 0)
    assert scores(pred, label, cfg) == (1.0, 0.0, 1.0)


def test_empty_label() -> None:
    pred = box(slice(2, 4), slice(2, 4), slice(2, 4))
    tpr, fdr, f1 = scores(pred, empty(), EvalConfig())
    assert math.isnan(tpr)  # nothing to detect
    assert (fdr, f1) == (1.0, 0.0)  # 1 false detection of 1; lesions on one side only


def test_empty_prediction() -> None:
    label = box(slice(2, 4), slice(2, 4), slice(2, 4))
    assert scores(empty(), label, EvalConfig()) == (0.0, 0.0, 0.0)  # 0 of 1 found; no false detection made


def test_both_empty() -> None:
    tpr, fdr, f1 = scores(empty(), empty(), EvalConfig())
    assert math.isnan(tpr)
    assert (fdr, f1) == (0.0, 1.0)


def test_components_under_the_minimum_volume_are_ignored() -> None:
    big = box(slice(2, 4), slice(2, 4), slice(2, 4))  # 8 voxels
    small = box(8, 8, slice(8, 10))  # 2 voxels
    stray = box(10, 10, slice(0, 2))  # 2 voxels, away from any label voxel
    label, pred = big | small, big | small | stray
    cfg = EvalConfig(lesion_min_volume_mm3=3.0)
    # 1 mm^3 voxels: the 2 mm^3 components are no lesions on either side
    assert match_lesions(pred, label, ISO, cfg) == LesionMatch(1, 1, 1, 0)
    # 2 mm^3 voxels: they are 4 mm^3 lesions; the stray one is a false detection:
    # TPR = 2/2, FDR = 1/3, PPV = 2/3, F1 = 2 * 1 * 2/3 / (1 + 2/3) = 0.8
    assert match_lesions(pred, label, (2.0, 1.0, 1.0), cfg) == LesionMatch(2, 2, 3, 1)
    tpr, fdr, f1 = scores(pred, label, cfg, (2.0, 1.0, 1.0))
    assert (tpr, fdr, f1) == (1.0, pytest.approx(1 / 3), pytest.approx(0.8))


def test_a_small_prediction_does_not_cover_a_lesion() -> None:
    label = box(slice(2, 4), slice(2, 4), slice(2, 4))
    pred = box(2, 2, slice(2, 4))  # 2 voxels inside the label lesion, under 3 mm^3
    assert match_lesions(pred, label, ISO, EvalConfig()) == LesionMatch(1, 0, 0, 0)
    # and exactly 3 mm^3 is a lesion (at least the minimum volume)
    pred = box(2, 2, slice(2, 4)) | box(2, 3, 2)
    assert match_lesions(pred, label, ISO, EvalConfig()) == LesionMatch(1, 1, 1, 0)


def test_the_overlap_fraction_rule() -> None:
    label = box(slice(4, 6), slice(4, 6), slice(4, 7))  # 2 * 2 * 3 = 12 voxels
    cfg = EvalConfig(lesion_overlap=0.25)
    three = box(4, 4, slice(4, 7))  # inside the label
    # label covered 3 / 12 = 0.25, not more than 0.25: missed; the prediction, 3 / 3 inside, is matched
    assert match_lesions(three, label, ISO, cfg) == LesionMatch(1, 0, 1, 0)
    assert scores(three, label, cfg) == (0.0, 0.0, 0.0)  # TPR 0, PPV 1: F1 = 0
    four = three | box(4, 5, 4)
    # 4 / 12 > 0.25: detected
    assert match_lesions(four, label, ISO, cfg) == LesionMatch(1, 1, 1, 0)


def test_any_voxel_counts_at_zero_overlap() -> None:
    label = box(slice(4, 6), slice(4, 6), slice(4, 7))  # 12 voxels, corner (5, 5, 6)
    pred = box(slice(5, 7), slice(5, 7), slice(6, 8))  # 8 voxels, sharing (5, 5, 6) only
    # label 1 / 12 = 0.083, prediction 1 / 8 = 0.125
    assert match_lesions(pred, label, ISO, EvalConfig(lesion_overlap=0.0)) == LesionMatch(1, 1, 1, 0)
    assert match_lesions(pred, label, ISO, EvalConfig(lesion_overlap=0.1)) == LesionMatch(1, 0, 1, 0)
    assert match_lesions(pred, label, ISO, EvalConfig(lesion_overlap=0.2)) == LesionMatch(1, 0, 1, 1)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("connectivity", [6, 18, 26])
def test_matches_a_flood_fill_on_random_masks(seed: int, connectivity: int) -> None:
    rng = np.random.default_rng(seed)
    label, pred = rng.random((2, 7, 7, 7)) < 0.25
    spacing = (1.0, 0.5, 2.0) if seed % 2 else ISO
    cfg = EvalConfig(
        lesion_connectivity=connectivity,
        lesion_min_volume_mm3=[0.0, 3.0, 5.0][seed % 3],
        lesion_overlap=[0.0, 0.3][seed // 3],
    )
    assert match_lesions(pred, label, spacing, cfg) == reference_match(pred, label, spacing, cfg)
