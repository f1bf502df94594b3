"""Networks: the residual 3D UNet and its per-sample output head."""

from mscl.models.unet import (
    NormReLU,
    SegmentationNet,
    build_model,
    count_parameters,
    encoder_parameter_names,
    reinit_decoder,
    split_encoder_decoder,
)

__all__ = [
    "NormReLU",
    "SegmentationNet",
    "build_model",
    "count_parameters",
    "encoder_parameter_names",
    "reinit_decoder",
    "split_encoder_decoder",
]
