"""Writing ``mscl predict``'s outputs atomically: into a temporary sibling of ``--out``, renamed at the end.

Masks and probability maps are saved on the scan's own grid with its affine and orientation codes, and
each file is read back and checked against the scan's header before it counts as written.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

import nibabel as nib
import numpy as np

from mscl.data.sources import read_header
from mscl.data.writer import check_output, move_into_place, temporary_sibling
from mscl.errors import DataError

PROBSEG_SUFFIX = "_desc-lesion_probseg.nii.gz"
MASK_SUFFIX = "_desc-lesion_mask.nii.gz"
TABLE_FILE = "predictions.csv"
DESCRIPTION_FILE = "dataset_description.json"


def like_scan(data: np.ndarray, scan: nib.Nifti1Image) -> nib.Nifti1Image:
    """``data`` as a NIfTI image on ``scan``'s grid: its affine, qform and sform (with their codes), its
    zooms and units; no intensity scaling."""
    image = nib.Nifti1Image(data, scan.affine)
    qform, qcode = scan.get_qform(coded=True)
    sform, scode = scan.get_sform(coded=True)
    image.set_qform(qform if qform is not None else scan.affine, int(qcode) or 1)
    image.set_sform(sform if sform is not None else scan.affine, int(scode) or 1)
    image.header.set_xyzt_units(*scan.header.get_xyzt_units())
    return image


def check_against(path: Path, scan: nib.Nifti1Image) -> None:
    """The file written at ``path`` has exactly ``scan``'s shape, affine and orientation.

    Raises:
        RuntimeError: it does not (a bug: the inverse mapping went wrong).
    """
    written = read_header(path)
    if written.shape != scan.shape[:3] or not np.allclose(written.affine, scan.affine, atol=1e-5):
        raise RuntimeError(f"{path}: grid {written.shape} differs from its scan's {scan.shape[:3]}")
    if nib.aff2axcodes(written.affine) != nib.aff2axcodes(scan.affine):
        raise RuntimeError(f"{path}: orientation differs from its scan's")


class OutputFolder:
    """The output folder being written; leaving the block without :meth:`commit` removes it all.

    Raises:
        DataError: ``out`` exists (without ``overwrite``) or its folder is not writable.
    """

    def __init__(self, out: Path, overwrite: bool = False) -> None:
        self.out = Path(out)
        check_output(self.out, overwrite)
        self.tmp = temporary_sibling(self.out)

    def __enter__(self) -> OutputFolder:
        try:
            self.tmp.mkdir()
        except OSError as exc:
            raise DataError(f"{self.out.parent}: cannot create output directory ({exc.strerror})") from None
        return self

    def save_nifti(self, relative: Path, data: np.ndarray, scan: nib.Nifti1Image) -> Path:
        """Save ``data`` on ``scan``'s grid at ``relative`` and check it; returns its final path."""
        path = self.tmp / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        nib.save(like_scan(data, scan), path)
        check_against(path, scan)
        return self.out / relative

    def save_json(self, relative: Path, value: Mapping[str, object]) -> None:
        """Save ``value`` as indented JSON at ``relative``."""
        path = self.tmp / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")

    def save_table(self, relative: Path, rows: Sequence[Mapping[str, object]]) -> None:
        """Save ``rows`` as CSV at ``relative``, the columns in order of first appearance."""
        columns = list(dict.fromkeys(key for row in rows for key in row))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, restval="", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        (self.tmp / relative).write_text(buffer.getvalue(), encoding="utf-8")

    def commit(self) -> Path:
        """Rename the folder into place (replacing an existing ``out``)."""
        return move_into_place(self.tmp, self.out)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.tmp.exists():
            shutil.rmtree(self.tmp, ignore_errors=True)
