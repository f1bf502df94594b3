"""Both volume store formats round-trip float16 arrays; checksums see every byte."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mscl.data.store import STORE_NAMES, array_sha256, open_store
from mscl.errors import DataError


@pytest.mark.parametrize("fmt", ["zarr", "hdf5"])
def test_round_trip_is_exact_float16(tmp_path: Path, fmt: str) -> None:
    rng = np.random.default_rng(0)
    image, label = rng.standard_normal((5, 6, 7)), rng.random((5, 6, 7))
    store = open_store(tmp_path, fmt, mode="w")
    store.write("s1_FLAIR", image, label)
    store.close()
    assert (tmp_path / STORE_NAMES[fmt]).exists()
    reopened = open_store(tmp_path, fmt, mode="r")
    read_image, read_label = reopened.read("s1_FLAIR")
    assert read_image.dtype == read_label.dtype == np.float16
    np.testing.assert_array_equal(read_image, image.astype(np.float16))
    np.testing.assert_array_equal(read_label, label.astype(np.float16))
    with pytest.raises(DataError, match="case 'other' missing"):
        reopened.read("other")
    reopened.close()


@pytest.mark.parametrize("fmt", ["zarr", "hdf5"])
def test_missing_store_is_a_data_error(tmp_path: Path, fmt: str) -> None:
    with pytest.raises(DataError, match="volume store missing"):
        open_store(tmp_path, fmt, mode="r")


def test_sha256_depends_on_values_dtype_and_shape() -> None:
    array = np.arange(24, dtype=np.float16).reshape(2, 3, 4)
    changed = array.copy()
    changed[1, 2, 3] += 1
    digests = {
        array_sha256(array),
        array_sha256(changed),
        array_sha256(array.astype(np.float32)),
        array_sha256(array.reshape(4, 3, 2)),
    }
    assert len(digests) == 4
    assert array_sha256(np.asfortranarray(array)) == array_sha256(array)
