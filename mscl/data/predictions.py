"""Saving soft-segmentation predictions as NIfTI files in the prepared (RAS, resampled, cropped) space."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from mscl.data.dataset import PreparedDataset
from mscl.errors import DataError


class PredictionWriter:
    """Writes ``<folder>/<case_id>_pred.nii.gz`` (float32 soft prediction, affine = diag(spacing))."""

    def __init__(self, folder: Path, dataset: PreparedDataset) -> None:
        self.folder, self.dataset = Path(folder), dataset
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DataError(f"{self.folder}: cannot create the predictions folder ({exc.strerror})") from None

    def write(self, case_id: str, prediction: np.ndarray) -> Path:
        """Save one case's prediction; returns the file written."""
        spacing = self.dataset.case(case_id).spacing
        path = self.folder / f"{case_id}_pred.nii.gz"
        if path.resolve().parent != self.folder.resolve():  # ids are checked on read; never write elsewhere
            raise DataError(f"case id {case_id!r} would write {path.resolve()}, outside {self.folder}")
        affine = np.diag([*spacing, 1.0])
        nib.save(nib.Nifti1Image(np.asarray(prediction, dtype=np.float32), affine), path)
        return path
