"""The residual 3D UNet (MONAI), its per-sample output head and its encoder/decoder split.

MONAI's UNet nests one level inside the next: ``unet.model = Sequential(down, SkipConnection(inner), up)``
where ``inner`` has the same shape down to the bottom block. The encoder is every ``down`` block plus the
bottom; the decoder is every ``up`` block (the last one produces the logits).
"""

from __future__ import annotations

from typing import TypeGuard, cast

import torch
from monai.networks.layers import SkipConnection
from monai.networks.nets import UNet
from torch import nn

from mscl.config import ModelConfig

NORMRELU_EPS = 1e-6


class NormReLU(nn.Module):
    """``relu(x) / max(relu(x))`` with the maximum taken over each sample's own voxels and channels.

    Per sample, never across the batch: a case's output does not depend on its batch mates. An all-negative
    sample maps to zeros. Computed in float32 whatever the autocast dtype.
    """

    def __init__(self, eps: float = NORMRELU_EPS) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise ``x`` of shape ``(B, C, *spatial)`` sample by sample."""
        positive = torch.relu(x.float())
        peak = positive.flatten(1).amax(dim=1).view(-1, *([1] * (x.ndim - 1)))
        return positive / (peak + self.eps)


class SegmentationNet(nn.Module):
    """A MONAI UNet producing logits, followed by the output head (normalised ReLU or sigmoid)."""

    def __init__(self, unet: UNet, head: nn.Module) -> None:
        super().__init__()
        self.unet = unet
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Soft lesion map in ``[0, 1]`` of the input's shape ``(B, 1, D, H, W)``."""
        return self.head(self.unet(x))


class _Sigmoid(nn.Module):
    """Sigmoid in float32 (autocast may hand over bf16 logits)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(x.float())


def build_model(cfg: ModelConfig, seed: int | None = None) -> SegmentationNet:
    """Build the residual 3D UNet of ``cfg`` on the CPU.

    Args:
        cfg: Channels per level (stride 2 between levels), residual units, norm, dropout, output head.
        seed: When given, weights are initialised from this seed without touching the global generator.
    """
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        unet = UNet(
            spatial_dims=3,
            in_channels=1,
            out_channels=1,
            channels=cfg.channels,
            strides=(2,) * cfg.levels,
            num_res_units=cfg.num_res_units,
            norm=cfg.norm,
            dropout=cfg.dropout,
        )
    head = NormReLU() if cfg.activation == "normrelu" else _Sigmoid()
    return SegmentationNet(unet, head)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _encoder_decoder_modules(model: SegmentationNet) -> tuple[list[nn.Module], list[nn.Module]]:
    """Walk MONAI's nested ``Sequential(down, SkipConnection(inner), up)`` levels down to the bottom."""
    encoder: list[nn.Module] = []
    decoder: list[nn.Module] = []
    level: nn.Module = model.unet.model
    while _is_level(level):
        encoder.append(level[0])
        decoder.append(level[2])
        level = cast(SkipConnection, level[1]).submodule
    encoder.append(level)
    return encoder, decoder


def _is_level(module: nn.Module) -> TypeGuard[nn.Sequential]:
    return isinstance(module, nn.Sequential) and len(module) == 3 and isinstance(module[1], SkipConnection)


def split_encoder_decoder(model: SegmentationNet) -> tuple[list[str], list[str]]:
    """Names (as in ``model.named_parameters()``) of the encoder and of the decoder parameters.

    The two lists partition every parameter of the model (the output head has none).
    """
    encoder_modules, _ = _encoder_decoder_modules(model)
    encoder_ids = {id(p) for module in encoder_modules for p in module.parameters()}
    encoder: list[str] = []
    decoder: list[str] = []
    for name, param in model.named_parameters():
        (encoder if id(param) in encoder_ids else decoder).append(name)
    return encoder, decoder


def encoder_parameter_names(model: SegmentationNet) -> list[str]:
    """Names of the encoder parameters (down path and bottom block)."""
    return split_encoder_decoder(model)[0]


def reinit_decoder(model: SegmentationNet, seed: int) -> None:
    """Re-initialise the decoder (up path) in place from ``seed``, keeping the encoder's weights.

    The global random generators are left as they were.
    """
    _, decoder_modules = _encoder_decoder_modules(model)
    cuda = sorted({p.get_device() for p in model.parameters() if p.device.type == "cuda"})
    with torch.random.fork_rng(devices=cuda), torch.no_grad():
        torch.manual_seed(seed)
        for block in decoder_modules:
            for module in block.modules():
                reset = getattr(module, "reset_parameters", None)
                if callable(reset):
                    reset()
