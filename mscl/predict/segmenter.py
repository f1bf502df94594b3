"""A stage model that segments scans in their own space: preprocess, slide windows, map back.

The one implementation behind ``mscl predict`` and the MLflow pyfunc model
(:mod:`mscl.predict.pyfunc`), so both give the same masks.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from mscl.data.preprocess import preprocess_image, read_volume
from mscl.engine.device import resolve_device
from mscl.engine.inference import predict_volume
from mscl.errors import TrackingError
from mscl.predict.settings import SegmenterSettings

WEIGHTS_FILE = "weights.pt"
SETTINGS_FILE = "settings.json"


def write_model_files(network: torch.nn.Module, settings: SegmenterSettings, folder: Path) -> dict[str, Path]:
    """Save ``weights.pt`` (the state dict, on the CPU) and ``settings.json`` into ``folder``: the files
    :meth:`Segmenter.from_files` reads, keyed as the MLflow model's artifacts."""
    weights = Path(folder) / WEIGHTS_FILE
    torch.save({k: v.detach().cpu() for k, v in network.state_dict().items()}, weights)
    return {"weights": weights, "settings": settings.write(Path(folder) / SETTINGS_FILE)}


class Segmenter:
    """A network with its settings, on a device.

    Args:
        network: the stage's network (weights loaded).
        settings: its preprocessing and inference settings.
        device: where it runs (``auto``: the GPU when there is one).
    """

    def __init__(self, network: torch.nn.Module, settings: SegmenterSettings, device: str = "auto") -> None:
        self.settings = settings
        self.device = resolve_device(device)
        self.network = network.to(self.device).eval()

    @classmethod
    def from_files(cls, weights: Path, settings: Path, device: str = "auto") -> Segmenter:
        """The model saved as ``weights.pt`` (a state dict, loaded with ``weights_only=True``) and
        ``settings.json``.

        Raises:
            TrackingError: a file is missing or unreadable, or the weights do not fit the network.
        """
        from mscl.models.unet import build_model

        loaded = SegmenterSettings.read(settings)
        network = build_model(loaded.model)
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
            network.load_state_dict(state)
        except Exception as exc:  # torch raises RuntimeError, pickle, zip and key errors
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise TrackingError(f"{weights}: not the weights of this model ({first})") from None
        return cls(network, loaded, device)

    def segment(self, image: np.ndarray, affine: np.ndarray | None = None) -> np.ndarray:
        """Lesion probabilities of a 3D scan on its own grid (float32, same shape as ``image``).

        ``affine`` is the scan's voxel-to-world matrix; without one the voxels are taken to be at the
        model's spacing in RAS order, so only the crop and the normalisation apply.

        Raises:
            DataError: the scan has no foreground.
        """
        if image.ndim != 3:
            raise ValueError(f"expected a 3D volume, got shape {tuple(image.shape)}")
        if affine is None:
            affine = np.diag([*self.settings.data.spacing, 1.0])
        cropped, grid = preprocess_image(np.asarray(image, dtype=np.float32), affine, self.settings.data)
        return grid.to_source(self.predict_grid(cropped))

    def segment_file(self, path: Path) -> np.ndarray:
        """Lesion probabilities of a NIfTI scan on its own grid (see :meth:`segment`)."""
        image, affine = read_volume(Path(path))
        return self.segment(image, affine)

    def predict_grid(self, volume: np.ndarray) -> np.ndarray:
        """Sliding-window probabilities of a volume already preprocessed onto the model grid."""
        return predict_volume(
            self.network,
            volume,
            self.settings.patch_size,
            self.settings.eval.overlap,
            self.settings.eval.window_batch,
            self.device,
            self.settings.precision,
        )

    def mask(self, probabilities: np.ndarray, threshold: float | None = None) -> np.ndarray:
        """The binary lesion mask (uint8) of probabilities: ``p >= threshold`` (default ``eval.threshold``,
        as the metrics binarise)."""
        cut = self.settings.eval.threshold if threshold is None else threshold
        return (probabilities >= cut).astype(np.uint8)

    def unknown_contrasts(self, contrasts: Sequence[str]) -> list[str]:
        """The ones of ``contrasts`` the model was not trained on."""
        return sorted(set(contrasts) - set(self.settings.contrasts))
