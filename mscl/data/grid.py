"""Where a scan's voxels lie on the model's grid, and the way back: preprocessing's spatial record.

Preprocessing (:func:`mscl.data.preprocess.preprocess_image`) reorients a scan to RAS, resamples it to the
model's spacing and crops it to its foreground; a :class:`GridMap` remembers each step, and
:meth:`GridMap.to_source` undoes them for a prediction: the crop is padded back with zeros and the volume
resampled (linearly, in world coordinates) onto the scan's own voxels, shape, affine and orientation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torchio as tio

from mscl.data.standardize import Box

Shape = tuple[int, int, int]


@dataclass(frozen=True)
class GridMap:
    """A scan's grid and the model grid it was preprocessed onto.

    Attributes:
        source_shape: the scan's voxel shape.
        source_affine: the scan's voxel-to-world affine (RAS mm, as nibabel reads it).
        grid_shape: the reoriented and resampled volume's shape, before the crop.
        grid_affine: that volume's affine.
        box: the crop taken from it (the volume the model sees).
    """

    source_shape: Shape
    source_affine: np.ndarray
    grid_shape: Shape
    grid_affine: np.ndarray
    box: Box

    @property
    def cropped_shape(self) -> Shape:
        """The shape of the volume the model sees."""
        start_stop = (s.indices(n)[:2] for s, n in zip(self.box, self.grid_shape, strict=True))
        x, y, z = (stop - start for start, stop in start_stop)
        return x, y, z

    def to_source(self, prediction: np.ndarray) -> np.ndarray:
        """A prediction of the cropped model-grid volume, on the scan's own grid (float32, linear).

        Raises:
            ValueError: ``prediction`` is not of :attr:`cropped_shape`.
        """
        if tuple(prediction.shape) != self.cropped_shape:
            raise ValueError(f"prediction shape {tuple(prediction.shape)} != cropped {self.cropped_shape}")
        full = np.zeros(self.grid_shape, dtype=np.float32)
        full[self.box] = prediction
        grid = tio.ScalarImage(tensor=torch.from_numpy(full[None]), affine=self.grid_affine)
        back = tio.Resample((self.source_shape, self.source_affine), image_interpolation="linear")(grid)
        out = back.data[0].numpy().astype(np.float32)
        if out.shape != self.source_shape:  # TorchIO resamples onto exactly the target's voxels
            raise RuntimeError(f"resampled shape {out.shape} != source {self.source_shape}")
        return out
