"""Engine test fixtures: one intra-op thread, tiny blob volumes (noise plus a bright cube lesion), configs."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch

from mscl.config import ModelConfig, TrainConfig


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Run each test on one intra-op thread: tiny tensors gain nothing from more, and on a busy shared CPU
    OpenMP barriers make a 2-thread training step up to 100 times slower."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def blob_case(
    seed: int, shape: tuple[int, int, int] = (24, 24, 24), size: int = 6
) -> tuple[np.ndarray, np.ndarray]:
    """An image with a bright ``size``-voxel cube at a seeded position and its binary label."""
    rng = np.random.default_rng(seed)
    corner = [int(rng.integers(2, s - size - 2)) for s in shape]
    box = tuple(slice(c, c + size) for c in corner)
    label = np.zeros(shape, np.float32)
    label[box] = 1.0
    image = (rng.normal(0.0, 0.3, shape) + 2.0 * label).astype(np.float32)
    return image, label


@pytest.fixture
def blobs() -> list[tuple[np.ndarray, np.ndarray]]:
    """Two blob cases."""
    return [blob_case(0), blob_case(1)]


@pytest.fixture
def tiny_model_cfg() -> ModelConfig:
    return ModelConfig(channels=(4, 8, 16), num_res_units=1)


@pytest.fixture
def tiny_train_cfg() -> TrainConfig:
    return TrainConfig(
        patch_size=(16, 16, 16),
        patches_per_case=2,
        cases_per_step=2,
        lesion_fraction=0.8,
        lr=1e-2,
        scheduler_step=10,
        precision="fp32",
        device="cpu",
    )
