"""``r_matrix.json``: the R matrix of one (strategy, seed) study, as stored on its MLflow parent run.

How each ``kind`` is read (rows always follow ``order``, one row per entry; columns follow ``centers``):

- ``continual`` (fine-tuning, replay, ...) and ``cumulative``: row ``i`` is the model after training stage
  ``i`` on center ``order[i]``; the continual metrics (BWT, FWT, forgetting) apply.
- ``single``: row ``i`` is a fresh model trained on center ``order[i]`` alone, tested on every center.
- ``joint``: one row, the model trained on every center pooled; ``order`` is ``["joint"]``.

Scores are Dice at threshold 0.5 in [0, 1]; a missing score (``null`` in JSON) reads as NaN.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Literal

import numpy as np
from mlflow.exceptions import MlflowException
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
from mlflow.tracking import MlflowClient
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mscl.errors import TrackingError

ARTIFACT = "r_matrix.json"
RMatrixKind = Literal["continual", "single", "joint", "cumulative"]
SEQUENTIAL_KINDS = ("continual", "cumulative")
Score = float | None


class RMatrix(BaseModel):
    """Test Dice of every center after every training stage of one (strategy, seed) study."""

    model_config = ConfigDict(extra="forbid")

    strategy: str = Field(min_length=1)
    kind: RMatrixKind = "continual"
    seed: int
    order: list[str] = Field(min_length=1, description="Stage labels in training order (centers).")
    centers: list[str] = Field(min_length=1, description="Canonical column order.")
    metric: Literal["dice@0.5"] = "dice@0.5"
    matrix: list[list[Score]] = Field(description="Rows = stages in training order, columns = centers.")
    baseline: list[Score] | None = Field(None, description="The untrained model's row (FWT reference).")
    per_case: dict[int, dict[str, dict[str, float]]] | None = Field(
        None, description="{stage index: {center: {case id: dice}}}."
    )

    @model_validator(mode="after")
    def _consistent(self) -> RMatrix:
        problems = [*self._shape_problems(), *self._order_problems()]
        rows = [*self.matrix, self.baseline or []]
        if any(v is not None and not math.isnan(v) and not 0.0 <= v <= 1.0 for row in rows for v in row):
            problems.append("scores must lie in [0, 1]")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _shape_problems(self) -> list[str]:
        k, n = len(self.order), len(self.centers)
        problems = [] if len(set(self.centers)) == n else ["centers repeat a name"]
        if len(self.matrix) != k:
            problems.append(f"matrix has {len(self.matrix)} rows for {k} stages in order")
        if any(len(row) != n for row in self.matrix):
            problems.append(f"every matrix row needs {n} columns (one per center)")
        if self.baseline is not None and len(self.baseline) != n:
            problems.append(f"baseline needs {n} values (one per center)")
        if self.per_case and any(not 0 <= stage < k for stage in self.per_case):
            problems.append(f"per_case stage indices must lie in 0..{k - 1}")
        return problems

    def _order_problems(self) -> list[str]:
        if self.kind == "joint":
            return [] if len(self.order) == 1 else ["a joint matrix has exactly one stage"]
        unknown = [c for c in self.order if c not in self.centers]
        problems = [f"order names centers missing from centers: {unknown}"] if unknown else []
        if len(set(self.order)) != len(self.order):
            problems.append("order repeats a center")
        return problems

    @property
    def r(self) -> np.ndarray:
        """The matrix as floats, NaN where a score is missing."""
        return np.array([[np.nan if v is None else v for v in row] for row in self.matrix], dtype=float)

    @property
    def baseline_row(self) -> np.ndarray | None:
        """The untrained model's scores as floats, or None."""
        if self.baseline is None:
            return None
        return np.array([np.nan if v is None else v for v in self.baseline], dtype=float)

    def aligned(self, centers: list[str]) -> np.ndarray:
        """The matrix with its columns in ``centers`` order (NaN for a center this study did not test)."""
        r, out = self.r, np.full((len(self.order), len(centers)), np.nan)
        for j, center in enumerate(centers):
            if center in self.centers:
                out[:, j] = r[:, self.centers.index(center)]
        return out

    @classmethod
    def from_json(cls, text: str, source: str = ARTIFACT) -> RMatrix:
        """Parse ``r_matrix.json`` text.

        Raises:
            TrackingError: naming ``source`` and the first problem when the text is not a valid R matrix.
        """
        try:
            return cls.model_validate_json(text)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "document"
            raise TrackingError(f"{source}: {where}: {first['msg']}") from None


def log_r_matrix(client: MlflowClient, run_id: str, rmatrix: RMatrix) -> None:
    """Store ``rmatrix`` as ``r_matrix.json`` at the artifact root of run ``run_id``."""
    client.log_text(run_id, rmatrix.model_dump_json(indent=1, exclude_none=True), ARTIFACT)


def load_r_matrix(client: MlflowClient, run_id: str, artifact_uri: str | None = None) -> RMatrix:
    """Read and validate ``r_matrix.json`` of run ``run_id``.

    Args:
        client: MLflow client of the tracking store.
        run_id: the parent run.
        artifact_uri: the run's artifact root when the caller has it (saves one query).

    Raises:
        TrackingError: when the run has no ``r_matrix.json`` or it is not a valid R matrix.
    """
    try:
        root = artifact_uri or client.get_run(run_id).info.artifact_uri
        repo = get_artifact_repository(root, tracking_uri=client.tracking_uri)
        text = Path(repo.download_artifacts(ARTIFACT)).read_text(encoding="utf-8")
    except (MlflowException, OSError):
        raise TrackingError(f"run {run_id}: no {ARTIFACT} artifact") from None
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        raise TrackingError(f"run {run_id}: {ARTIFACT} is not JSON ({exc.msg}, line {exc.lineno})") from None
    return RMatrix.from_json(text, source=f"run {run_id}: {ARTIFACT}")
