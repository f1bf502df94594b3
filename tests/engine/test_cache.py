"""CaseCache: padding to a common shape, extents, lesion voxels and their fallbacks."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from mscl.engine.cache import CaseCache
from mscl.errors import DataError


def _volume(shape: tuple[int, int, int], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape).astype(np.float16)


def test_cases_are_padded_at_the_origin_to_a_common_shape() -> None:
    images = [_volume((4, 6, 5), 0), _volume((7, 3, 5), 1)]
    labels = [np.zeros((4, 6, 5), np.float16), np.zeros((7, 3, 5), np.float16)]
    cache = CaseCache.from_arrays(images, labels, "cpu")
    assert cache.shape == (7, 6, 5)
    assert len(cache) == 2
    assert cache.images.dtype == torch.float32
    assert cache.extents.tolist() == [[4, 6, 5], [7, 3, 5]]
    np.testing.assert_array_equal(cache.images[0, :4, :6, :5].numpy(), images[0].astype(np.float32))
    np.testing.assert_array_equal(cache.images[1, :7, :3, :5].numpy(), images[1].astype(np.float32))
    assert cache.images[0, 4:].abs().sum() == 0
    assert cache.images[1, :, 3:].abs().sum() == 0


def test_min_shape_raises_the_common_shape_and_dtype_is_configurable() -> None:
    cache = CaseCache.from_arrays(
        [_volume((4, 4, 4), 0)], [np.zeros((4, 4, 4))], "cpu", min_shape=(8, 3, 6), dtype=torch.float16
    )
    assert cache.shape == (8, 4, 6)
    assert cache.labels.dtype == torch.float16
    assert cache.nbytes == 2 * 8 * 4 * 6 * 2 + 3 * 8 + 2 * 8


def test_lesion_voxels_use_half_then_any_then_none() -> None:
    strong = np.zeros((3, 4, 5), np.float32)
    strong[1, 2, 3] = 0.9
    strong[2, 0, 0] = 0.2
    faint = np.zeros((3, 4, 5), np.float32)
    faint[0, 1, 1] = 0.2
    empty = np.zeros((3, 4, 5), np.float32)
    cache = CaseCache.from_arrays([_volume((3, 4, 5), i) for i in range(3)], [strong, faint, empty], "cpu")
    assert cache.lesion_counts.tolist() == [1, 1, 0]
    assert cache.lesion_offsets.tolist() == [0, 1, 2, 2]
    assert cache.lesion_indices.tolist() == [1 * 20 + 2 * 5 + 3, 0 * 20 + 1 * 5 + 1]


def test_lesion_indices_address_the_padded_volume() -> None:
    label = np.zeros((2, 2, 2), np.float32)
    label[1, 1, 1] = 1.0
    cache = CaseCache.from_arrays(
        [_volume((4, 4, 4), 0), _volume((2, 2, 2), 1)], [np.zeros((4, 4, 4)), label], "cpu"
    )
    (flat,) = cache.lesion_indices.tolist()
    assert cache.labels[1].flatten()[flat] == 1.0
    assert np.unravel_index(flat, cache.shape) == (1, 1, 1)


@pytest.mark.parametrize(
    ("images", "labels", "message"),
    [
        ([], [], "no cases"),
        ([np.zeros((2, 2, 2))], [], "1 images, 0 labels"),
        ([np.zeros((2, 2))], [np.zeros((2, 2))], "'case0': image must be 3D"),
        (
            [np.zeros((2, 2, 2))],
            [np.zeros((2, 2, 3))],
            "'case0': image shape (2, 2, 2) != label shape (2, 2, 3)",
        ),
    ],
)
def test_bad_inputs_name_the_problem(images: list, labels: list, message: str) -> None:
    with pytest.raises(DataError, match=re.escape(message)):
        CaseCache.from_arrays(images, labels, "cpu")


def test_case_ids_name_the_culprit() -> None:
    with pytest.raises(DataError, match="'sub-7_FLAIR'"):
        CaseCache.from_arrays([np.zeros((2, 2, 2))], [np.zeros((1, 2, 2))], "cpu", case_ids=["sub-7_FLAIR"])
