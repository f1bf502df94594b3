"""Patch sampling: one gather equals plain slicing + flip + rot90, lesion centring, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mscl.engine.cache import CaseCache
from mscl.engine.sampling import ROTATION_AXES, draw_patch_params, gather_patches, sample_patches

SHAPES = [(11, 12, 9), (8, 9, 10), (12, 10, 12)]


@pytest.fixture
def cache() -> CaseCache:
    rng = np.random.default_rng(0)
    images = [rng.normal(size=shape).astype(np.float32) for shape in SHAPES]
    labels = [(rng.random(shape) > 0.97).astype(np.float32) for shape in SHAPES]
    return CaseCache.from_arrays(images, labels, "cpu")


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _reference(volume: torch.Tensor, case: int, start: list[int], size: tuple[int, ...], flips, k: int):
    (s0, s1, s2), (p0, p1, p2) = start, size
    crop = volume[case, s0 : s0 + p0, s1 : s1 + p1, s2 : s2 + p2]
    crop = torch.flip(crop, [axis for axis in range(3) if flips[axis]])
    return torch.rot90(crop, k, dims=ROTATION_AXES)


@pytest.mark.parametrize("patch", [(6, 6, 4), (5, 7, 6)])
def test_one_gather_matches_slicing_flip_and_rot90(cache: CaseCache, patch: tuple[int, int, int]) -> None:
    cases = torch.tensor([0, 0, 1, 1, 2, 2, 0, 1, 2, 2, 1, 0] * 3)
    params = draw_patch_params(cache, cases, patch, 0.5, _generator(1))
    images, labels = gather_patches(cache, params, patch)
    assert images.shape == labels.shape == (len(cases), 1, *patch)
    assert params.flips.any() and not params.flips.all()
    assert set(params.rotations.tolist()) == ({0, 1, 2, 3} if patch[0] == patch[1] else {0, 2})
    for b, case in enumerate(cases.tolist()):
        start, flips, k = params.starts[b].tolist(), params.flips[b].tolist(), int(params.rotations[b])
        extent = cache.extents[case]
        assert all(
            s >= 0 and s + p <= max(e, p) for s, p, e in zip(start, patch, extent.tolist(), strict=True)
        )
        assert torch.equal(images[b, 0], _reference(cache.images, case, start, patch, flips, k))
        assert torch.equal(labels[b, 0], _reference(cache.labels, case, start, patch, flips, k))


def test_image_and_label_stay_aligned(cache: CaseCache) -> None:
    aligned = CaseCache.from_arrays(
        [cache.images[i] for i in range(3)], [torch.sigmoid(cache.images[i]) for i in range(3)], "cpu"
    )
    images, labels = sample_patches(aligned, torch.arange(3).repeat(8), (6, 6, 6), 0.5, _generator(2))
    assert torch.equal(labels, torch.sigmoid(images))


def test_full_lesion_fraction_centres_on_lesion(cache: CaseCache) -> None:
    shape = (15, 15, 15)
    label = np.zeros(shape, np.float32)
    label[5, 6, 7] = label[9, 8, 7] = label[7, 7, 10] = 0.8
    lesioned = CaseCache.from_arrays([np.random.default_rng(3).normal(size=shape)], [label], "cpu")
    _, labels = sample_patches(lesioned, torch.zeros(64, dtype=torch.long), (5, 5, 5), 1.0, _generator(3))
    assert (labels[:, 0, 2, 2, 2] == 0.8).all()


def test_no_lesion_fraction_samples_uniformly(cache: CaseCache) -> None:
    params = draw_patch_params(cache, torch.zeros(400, dtype=torch.long), (3, 3, 3), 0.0, _generator(4))
    centres = params.starts + 1
    label = cache.labels[0]
    hits = label[centres[:, 0], centres[:, 1], centres[:, 2]].mean()
    assert 0.0 <= hits < 0.15
    assert len({tuple(c) for c in centres.tolist()}) > 200


def test_same_generator_state_gives_same_patches(cache: CaseCache) -> None:
    cases = torch.tensor([2, 0, 1, 1])
    first = sample_patches(cache, cases, (6, 6, 6), 0.5, _generator(5))
    again = sample_patches(cache, cases, (6, 6, 6), 0.5, _generator(5))
    other = sample_patches(cache, cases, (6, 6, 6), 0.5, _generator(6))
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[0], other[0])


def test_disabled_augmentation_gives_plain_crops(cache: CaseCache) -> None:
    params = draw_patch_params(
        cache, torch.arange(3).repeat(5), (6, 6, 6), 0.5, _generator(7), flips=False, rotations=False
    )
    assert not params.flips.any()
    assert not params.rotations.any()


def test_cases_smaller_than_the_patch_start_at_the_origin() -> None:
    small = np.ones((3, 4, 2), np.float32)
    tiny = CaseCache.from_arrays([small], [small], "cpu", min_shape=(6, 6, 6))
    images, _ = sample_patches(tiny, torch.zeros(4, dtype=torch.long), (6, 6, 6), 0.5, _generator(8))
    assert (images.sum(dim=(1, 2, 3, 4)) == small.sum()).all()


def test_cases_without_any_lesion_are_sampled_uniformly() -> None:
    empty = CaseCache.from_arrays([np.ones((8, 8, 8))], [np.zeros((8, 8, 8))], "cpu")
    _, labels = sample_patches(empty, torch.zeros(4, dtype=torch.long), (4, 4, 4), 1.0, _generator(9))
    assert labels.shape == (4, 1, 4, 4, 4)


def test_patch_larger_than_the_cache_is_refused(cache: CaseCache) -> None:
    with pytest.raises(ValueError, match="min_shape=patch_size"):
        sample_patches(cache, torch.tensor([0]), (16, 4, 4), 0.5, _generator(0))
