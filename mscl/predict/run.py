"""``mscl predict``: segment scans with a stage model and write masks, probabilities and a table.

Per scan: read (a damaged scan fails alone), preprocess as ``prepare`` does, sliding-window inference,
map back onto the scan's grid, save the probability map and the mask, count the lesions and, with a
label, score every registered metric on the scan's grid.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mscl import __version__
from mscl.data.preprocess import read_volume
from mscl.data.sources import UNKNOWN, check_pair, read_header
from mscl.engine.evaluation import score_prediction
from mscl.errors import DataError, MsclError, first_line
from mscl.metrics.lesions import match_lesions
from mscl.metrics.registry import METRICS, build_metrics
from mscl.predict.inputs import DERIVATIVES, Scan, find_inputs
from mscl.predict.outputs import DESCRIPTION_FILE, MASK_SUFFIX, PROBSEG_SUFFIX, TABLE_FILE, OutputFolder
from mscl.predict.segmenter import Segmenter
from mscl.progress import ProgressDisplay
from mscl.tracking.models import ModelRef, resolve_model


@dataclass
class PredictReport:
    """What a prediction produced: one row per segmented scan, one line per scan that failed."""

    model: ModelRef
    rows: list[dict[str, Any]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    seconds_per_scan: list[float] = field(default_factory=list)


def predict(
    model: str,
    input_path: Path,
    out: Path,
    *,
    stage: int | None = None,
    threshold: float | None = None,
    tracking_uri: str | None = None,
    overwrite: bool = False,
    quiet: bool = False,
    warn: Callable[[str], object] = print,
) -> PredictReport:
    """Resolve ``model`` (``models:/NAME@ALIAS``, ``models:/<id>`` or a run id, with ``stage``) in the
    tracking store, then :func:`predict_scans`.

    Raises:
        TrackingError: the store does not exist or answer, or the model is not found (nothing is written).
        DataError: the output folder cannot be written, or the input holds no scan.
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    from mscl.data.writer import check_output
    from mscl.tracking.uri import connect_existing

    check_output(Path(out), overwrite)
    uri = connect_existing(tracking_uri)
    mlflow.set_tracking_uri(uri)
    ref = resolve_model(MlflowClient(uri), model, stage)
    segmenter = load_segmenter(ref)
    return predict_scans(
        segmenter, ref, input_path, out, threshold=threshold, overwrite=overwrite, quiet=quiet, warn=warn
    )


def load_segmenter(ref: ModelRef) -> Segmenter:
    """The segmenter inside the MLflow model ``ref``, loaded as ``mlflow.pyfunc.load_model`` loads it."""
    import mlflow

    from mscl.predict.pyfunc import SegmenterModel

    python_model = mlflow.pyfunc.load_model(ref.uri).unwrap_python_model()
    assert isinstance(python_model, SegmenterModel), type(python_model)
    return python_model.segmenter


def predict_scans(
    segmenter: Segmenter,
    ref: ModelRef,
    input_path: Path,
    out: Path,
    *,
    threshold: float | None = None,
    overwrite: bool = False,
    quiet: bool = False,
    warn: Callable[[str], object] = print,
) -> PredictReport:
    """Segment every scan of ``input_path`` into ``out`` (written atomically, once all scans are done).

    ``warn(line)`` reports a scan that failed and a contrast the model was not trained on.

    Raises:
        DataError: the input holds no scan, or ``out`` cannot be written.
    """
    with OutputFolder(out, overwrite) as folder:
        inputs = find_inputs(input_path, segmenter.settings.data)
        trained = segmenter.settings.contrasts
        for contrast in sorted({s.case.contrast for s in inputs.scans} - set(trained) - {UNKNOWN}):
            known = ", ".join(trained)
            warn(f"warning: the model was not trained on {contrast} (only {known}): check its masks")
        report = PredictReport(ref)
        with ProgressDisplay(quiet) as bar:
            task = bar.add_task("segmenting", total=len(inputs.scans), unit="scan")
            for scan in inputs.scans:
                started = time.perf_counter()
                try:
                    report.rows.append(_segment(segmenter, scan, folder, threshold))
                    report.seconds_per_scan.append(time.perf_counter() - started)
                except MsclError as exc:
                    report.failures.append(first_line(exc))
                    warn(f"error: {first_line(exc)}")
                bar.advance(task)
        if report.rows:
            folder.save_table(Path(TABLE_FILE), report.rows)
            description = dataset_description(ref, input_path)
            folder.save_json((DERIVATIVES if inputs.bids else Path()) / DESCRIPTION_FILE, description)
            folder.commit()
    return report


def _segment(
    segmenter: Segmenter, scan: Scan, folder: OutputFolder, threshold: float | None
) -> dict[str, Any]:
    """Segment one scan, save its outputs, and return its row of ``predictions.csv``."""
    case = scan.case
    check_pair(case.image, case.label)
    header = read_header(case.image)
    image, affine = read_volume(case.image)
    try:
        probabilities = segmenter.segment(image, affine)
    except DataError as exc:
        raise DataError(f"{case.image}: {exc}") from None
    mask = segmenter.mask(probabilities, threshold)
    probseg = folder.save_nifti(
        scan.prefix.with_name(scan.prefix.name + PROBSEG_SUFFIX), probabilities, header
    )
    mask_path = folder.save_nifti(scan.prefix.with_name(scan.prefix.name + MASK_SUFFIX), mask, header)
    spacing = tuple(float(z) for z in header.header.get_zooms()[:3])
    cfg = segmenter.settings.eval.model_copy(
        update={"threshold": segmenter.settings.eval.threshold if threshold is None else threshold}
    )
    lesions = match_lesions(mask.astype(bool), np.zeros(mask.shape, dtype=bool), spacing, cfg)
    row: dict[str, Any] = {
        "subject": case.subject,
        "contrast": case.contrast,
        "image": str(case.image),
        "lesion_count": lesions.pred_lesions,
        "lesion_volume_ml": float(mask.sum()) * float(np.prod(spacing)) / 1000.0,
        "mask": str(mask_path),
        "probseg": str(probseg),
    }
    if case.label is not None:
        label, _ = read_volume(case.label)
        metrics = build_metrics(cfg, METRICS.names())
        row |= score_prediction(probabilities, label.clip(0, 1), spacing, cfg, metrics)
    return row


def dataset_description(ref: ModelRef, input_path: Path) -> dict[str, Any]:
    """The BIDS ``dataset_description.json`` of the outputs, naming the model and its stage run."""
    return {
        "Name": "mscl lesion segmentation",
        "BIDSVersion": "1.9.0",
        "DatasetType": "derivative",
        "GeneratedBy": [
            {"Name": "mscl", "Version": __version__, "Description": f"mscl predict with {ref.uri}"}
        ],
        "SourceDatasets": [{"URL": Path(input_path).resolve().as_uri()}],
        "mscl": {"model_uri": ref.uri, "model_id": ref.model_id, "run_id": ref.run_id},
    }
