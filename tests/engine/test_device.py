"""Device and precision resolution, seeding, determinism switches."""

from __future__ import annotations

import contextlib
import random

import numpy as np
import pytest
import torch

from mscl.engine.device import (
    autocast_context,
    autocast_dtype,
    configure_determinism,
    resolve_device,
    seed_everything,
)
from mscl.errors import ConfigError

CPU = torch.device("cpu")


def test_auto_and_cpu_resolve() -> None:
    assert resolve_device("cpu") == CPU
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.parametrize(("spec", "message"), [("gpu", "not a device"), ("meta", "not supported")])
def test_unknown_devices_are_config_errors(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=f"train.device: '{spec}' is {message}"):
        resolve_device(spec)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("spec", ["cuda", "cuda:1"])
def test_missing_cuda_is_a_config_error(spec: str) -> None:
    with pytest.raises(ConfigError, match="CUDA is not available"):
        resolve_device(spec)


@pytest.mark.parametrize("precision", ["auto", "bf16", "fp32"])
def test_cpu_always_runs_in_fp32(precision: str) -> None:
    assert autocast_dtype(CPU, precision) is None
    assert isinstance(autocast_context(CPU, precision), contextlib.nullcontext)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_autocasts_to_bf16() -> None:
    cuda = torch.device("cuda")
    assert autocast_dtype(cuda, "fp32") is None
    assert autocast_dtype(cuda, "auto") == torch.bfloat16
    with autocast_context(cuda, "bf16"):
        assert (torch.ones(2, 2, device=cuda) @ torch.ones(2, 2, device=cuda)).dtype == torch.bfloat16


def test_seed_everything_seeds_every_generator() -> None:
    seed_everything(11)
    first = (random.random(), np.random.random(), torch.rand(1).item())
    seed_everything(11)
    assert (random.random(), np.random.random(), torch.rand(1).item()) == first


def test_configure_determinism_on_cpu_switches_deterministic_algorithms() -> None:
    previous = torch.are_deterministic_algorithms_enabled()
    try:
        configure_determinism(True, CPU)
        assert torch.are_deterministic_algorithms_enabled()
        configure_determinism(False, CPU)
        assert not torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(previous)
