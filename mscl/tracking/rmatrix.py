"""``r_matrix.json``: the R matrices of one (strategy, seed) study, one per metric, on its MLflow parent run.

How each ``kind`` is read (rows always follow ``order``, one row per entry; columns follow ``centers``):

- ``continual`` (fine-tuning, replay, ...) and ``cumulative``: row ``i`` is the model after training stage
  ``i`` on center ``order[i]``; the continual metrics (BWT, FWT, forgetting) apply.
- ``single``: row ``i`` is a fresh model trained on center ``order[i]`` alone, tested on every center.
- ``joint``: one row, the model trained on every center pooled; ``order`` is ``["joint"]``.

Format 2 holds one :class:`MetricMatrix` per evaluation metric under ``metrics`` (the first is the headline
metric, Dice by default), each with its direction and bounds. Format 1 files (one Dice matrix, ``metric:
"dice@0.5"``) are read as format 2 with the single metric ``dice``. A missing score (``null`` in JSON)
reads as NaN.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
from mlflow.exceptions import MlflowException
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
from mlflow.tracking import MlflowClient
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mscl.data.manifest import IDENTIFIER
from mscl.errors import TrackingError
from mscl.protocol.kinds import RMatrixKind
from mscl.tracking.artifacts import check_hash, log_bytes, sha256_hex
from mscl.tracking.tree import R_MATRIX_ARTIFACT

FORMAT: Literal[2] = 2
LEGACY_METRIC = "dice@0.5"
"""The only metric a format 1 file can hold: Dice at threshold 0.5 (the registry's ``dice``)."""
Score = float | None
PerCase = dict[int, dict[str, dict[str, Score]]]
"""{stage index: {center: {case id: score}}}."""


class MetricMatrix(BaseModel):
    """One metric's scores of every center after every stage."""

    model_config = ConfigDict(extra="forbid")

    higher_is_better: bool = True
    bounds: tuple[float, float | None] = (0.0, 1.0)
    matrix: list[list[Score]] = Field(description="Rows = stages in training order, columns = centers.")
    baseline: list[Score] | None = Field(None, description="The untrained model's row (FWT reference).")
    per_case: PerCase | None = None

    @model_validator(mode="after")
    def _within_bounds(self) -> MetricMatrix:
        low, high = self.bounds
        rows = [*self.matrix, self.baseline or []]
        values = [v for row in rows for v in row if v is not None and not math.isnan(v)]
        if any(v < low or (high is not None and v > high) for v in values):
            shown = f"[{low:g}, {high:g}]" if high is not None else f"[{low:g}, inf)"
            raise ValueError(f"scores must lie in {shown}")
        return self

    @property
    def r(self) -> np.ndarray:
        """The matrix as floats, NaN where a score is missing."""
        return _floats(self.matrix)

    @property
    def baseline_row(self) -> np.ndarray | None:
        """The untrained model's scores as floats, or None."""
        return None if self.baseline is None else _floats([self.baseline])[0]


class RMatrix(BaseModel):
    """Every metric of every center after every training stage of one (strategy, seed) study."""

    model_config = ConfigDict(extra="forbid")

    format: Literal[2] = FORMAT
    strategy: str = Field(min_length=1)
    kind: RMatrixKind = "continual"
    seed: int
    order: list[str] = Field(min_length=1, description="Stage labels in training order (centers).")
    centers: list[str] = Field(min_length=1, description="Canonical column order.")
    metrics: dict[str, MetricMatrix] = Field(min_length=1, description="Metric name -> its R matrix.")

    @model_validator(mode="before")
    @classmethod
    def _read_format_1(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "format" in data or "matrix" not in data:
            return data
        data = dict(data)
        metric = data.pop("metric", LEGACY_METRIC)
        if metric != LEGACY_METRIC:
            raise ValueError(f"format 1 metric must be {LEGACY_METRIC!r}, not {metric!r}")
        legacy = {key: data.pop(key) for key in ("matrix", "baseline", "per_case") if key in data}
        return {**data, "format": FORMAT, "metrics": {"dice": legacy}}

    @model_validator(mode="after")
    def _consistent(self) -> RMatrix:
        problems = [*self._order_problems()]
        for name, metric in self.metrics.items():
            problems += [f"{name}: {problem}" for problem in self._shape_problems(metric)]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _shape_problems(self, metric: MetricMatrix) -> list[str]:
        k, n = len(self.order), len(self.centers)
        problems = []
        if len(metric.matrix) != k:
            problems.append(f"matrix has {len(metric.matrix)} rows for {k} stages in order")
        if any(len(row) != n for row in metric.matrix):
            problems.append(f"every matrix row needs {n} columns (one per center)")
        if metric.baseline is not None and len(metric.baseline) != n:
            problems.append(f"baseline needs {n} values (one per center)")
        if metric.per_case and any(not 0 <= stage < k for stage in metric.per_case):
            problems.append(f"per_case stage indices must lie in 0..{k - 1}")
        return problems

    def _order_problems(self) -> list[str]:
        problems = [] if len(set(self.centers)) == len(self.centers) else ["centers repeat a name"]
        # names that end up in the report's file names: never a path
        strange = [n for n in [*self.metrics, *self.centers, *self.order] if not IDENTIFIER.fullmatch(n)]
        if strange:
            problems.append(f"names may only hold letters, digits, '.', '_' and '-': {strange}")
        if self.kind == "joint":
            return problems + ([] if len(self.order) == 1 else ["a joint matrix has exactly one stage"])
        unknown = [c for c in self.order if c not in self.centers]
        if unknown:
            problems.append(f"order names centers missing from centers: {unknown}")
        if len(set(self.order)) != len(self.order):
            problems.append("order repeats a center")
        return problems

    @property
    def headline(self) -> str:
        """The first metric (Dice unless ``eval.metrics`` put another first)."""
        return next(iter(self.metrics))

    def metric(self, name: str | None = None) -> MetricMatrix:
        """The matrix of metric ``name`` (default the headline metric).

        Raises:
            KeyError: naming the metrics this study has.
        """
        name = name or self.headline
        if name not in self.metrics:
            raise KeyError(f"no {name!r} matrix; this study has {', '.join(self.metrics)}")
        return self.metrics[name]

    def values(self, metric: str | None = None) -> np.ndarray:
        """R of ``metric`` as floats (rows = stages, columns = ``centers``), NaN where missing."""
        return self.metric(metric).r

    def aligned(self, centers: list[str], metric: str | None = None) -> np.ndarray:
        """R of ``metric``, columns in ``centers`` order (NaN for a center this study did not test)."""
        r, out = self.values(metric), np.full((len(self.order), len(centers)), np.nan)
        for j, center in enumerate(centers):
            if center in self.centers:
                out[:, j] = r[:, self.centers.index(center)]
        return out

    @classmethod
    def from_json(cls, text: str, source: str = R_MATRIX_ARTIFACT) -> RMatrix:
        """Parse ``r_matrix.json`` text (format 1 or 2).

        Raises:
            TrackingError: naming ``source`` and the first problem when the text is not a valid R matrix.
        """
        try:
            return cls.model_validate_json(text)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "document"
            message = str(first["msg"]).removeprefix("Value error, ")
            raise TrackingError(f"{source}: {where}: {message}") from None


def _floats(rows: list[list[Score]]) -> np.ndarray:
    return np.array([[np.nan if v is None else v for v in row] for row in rows], dtype=float)


def log_r_matrix(client: MlflowClient, run_id: str, rmatrix: RMatrix) -> None:
    """Store ``rmatrix`` as ``r_matrix.json`` at the artifact root of run ``run_id``, its sha256 tagged."""
    text = rmatrix.model_dump_json(indent=1, exclude_none=True)
    log_bytes(client, run_id, text.encode("utf-8"), R_MATRIX_ARTIFACT)


def load_r_matrix(
    client: MlflowClient,
    run_id: str,
    artifact_uri: str | None = None,
    *,
    tags: Mapping[str, str] | None = None,
    verify: bool = True,
) -> RMatrix:
    """Read and validate ``r_matrix.json`` of run ``run_id``, after checking it against its logged sha256.

    Args:
        client: MLflow client of the tracking store.
        run_id: the parent run.
        artifact_uri: the run's artifact root when the caller has it (with ``tags``, saves one query).
        tags: the run's tags when the caller has them.
        verify: check the sha256 (the audit reads an edited file to name the values that differ).

    Raises:
        TrackingError: when the run has no ``r_matrix.json``, it does not match its logged sha256, or it is
            not a valid R matrix.
    """
    try:
        if artifact_uri is None or (verify and tags is None):
            run = client.get_run(run_id)
            artifact_uri, tags = run.info.artifact_uri, run.data.tags
        repo = get_artifact_repository(artifact_uri, tracking_uri=client.tracking_uri)
        raw = Path(repo.download_artifacts(R_MATRIX_ARTIFACT)).read_bytes()
    except (MlflowException, OSError):
        raise TrackingError(f"run {run_id}: no {R_MATRIX_ARTIFACT} artifact") from None
    if verify:
        check_hash(run_id, tags or {}, R_MATRIX_ARTIFACT, sha256_hex(raw))
    try:
        text = raw.decode("utf-8")
        json.loads(text)
    except UnicodeDecodeError:
        raise TrackingError(f"run {run_id}: {R_MATRIX_ARTIFACT} is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise TrackingError(
            f"run {run_id}: {R_MATRIX_ARTIFACT} is not JSON ({exc.msg}, line {exc.lineno})"
        ) from None
    return RMatrix.from_json(text, source=f"run {run_id}: {R_MATRIX_ARTIFACT}")
