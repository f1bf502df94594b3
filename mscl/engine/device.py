"""Device, precision and determinism: where a stage runs and how reproducibly.

CPU runs are bitwise reproducible (deterministic algorithms, fp32). CUDA runs favour speed: cuDNN autotuning
and bf16 autocast, reproducible only up to floating-point noise.
"""

from __future__ import annotations

import contextlib
import random
from typing import Literal

import numpy as np
import torch

from mscl.errors import ConfigError

Precision = Literal["auto", "bf16", "fp32"]
_DEVICE_CHOICES = "use auto, cpu, cuda or cuda:<index>"


def resolve_device(spec: str = "auto") -> torch.device:
    """Turn ``train.device`` into a :class:`torch.device`.

    Args:
        spec: ``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:<index>``.

    Raises:
        ConfigError: for an unknown spec or a CUDA device this machine does not have.
    """
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise ConfigError(f"train.device: {spec!r} is not a device; {_DEVICE_CHOICES}") from None
    if device.type == "cpu":
        return torch.device("cpu")
    if device.type != "cuda":
        raise ConfigError(f"train.device: {spec!r} is not supported; {_DEVICE_CHOICES}")
    if not torch.cuda.is_available():
        raise ConfigError(f"train.device: {spec!r} requested but CUDA is not available on this machine")
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise ConfigError(f"train.device: {spec!r} requested but this machine has {count} CUDA device(s)")
    return device


def autocast_dtype(device: torch.device, precision: Precision) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device``, or ``None`` for plain fp32.

    bf16 autocast is used only on CUDA: ``auto`` means bf16 where the GPU supports it, fp32 otherwise;
    on CPU every precision runs in fp32 (CPU bf16 is slower and would break bitwise reproducibility).

    Raises:
        ConfigError: ``bf16`` requested on a GPU without bf16 support.
    """
    if device.type != "cuda" or precision == "fp32":
        return None
    if torch.cuda.is_bf16_supported():
        return torch.bfloat16
    if precision == "bf16":
        name = torch.cuda.get_device_name(device)
        raise ConfigError(f"train.precision: bf16 requested but the GPU ({name}) does not support it")
    return None


def autocast_context(device: torch.device, precision: Precision) -> contextlib.AbstractContextManager[object]:
    """A context manager running the forward pass in the precision chosen by :func:`autocast_dtype`."""
    dtype = autocast_dtype(device, precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def configure_determinism(deterministic: bool, device: torch.device) -> None:
    """Set torch's process-wide algorithm choices for training on ``device``.

    On CPU ``deterministic`` switches :func:`torch.use_deterministic_algorithms`. On CUDA speed wins:
    deterministic algorithms are off and cuDNN autotuning (``cudnn.benchmark``) is on, whatever the flag.
    """
    if device.type == "cuda":
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.benchmark = True
    else:
        torch.use_deterministic_algorithms(deterministic)
