"""The r_matrix.json model: validation, NaN handling, alignment, MLflow round trip."""

from __future__ import annotations

import math

import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from pydantic import ValidationError

from mscl.errors import TrackingError
from mscl.tracking.rmatrix import RMatrix, load_r_matrix, log_r_matrix

BASE = {"strategy": "replay", "seed": 3, "order": ["B", "A"], "centers": ["A", "B"]}


def make(**changes) -> RMatrix:
    return RMatrix(**{**BASE, "matrix": [[0.1, 0.2], [0.3, float("nan")]], **changes})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"matrix": [[0.1, 0.2]]}, "matrix has 1 rows for 2 stages"),
        ({"matrix": [[0.1], [0.2]]}, "needs 2 columns"),
        ({"order": ["B", "C"]}, r"order names centers missing from centers: \['C'\]"),
        ({"order": ["A", "A"]}, "order repeats a center"),
        ({"matrix": [[0.1, 1.2], [0.3, 0.4]]}, r"scores must lie in \[0, 1\]"),
        ({"baseline": [0.1]}, "baseline needs 2 values"),
        ({"per_case": {2: {"A": {"a1": 0.5}}}}, "per_case stage indices"),
        ({"kind": "joint"}, "a joint matrix has exactly one stage"),
        ({"metric": "dice@0.3"}, "metric"),
    ],
)
def test_invalid_matrices_are_rejected(changes, message) -> None:
    with pytest.raises(ValidationError, match=message):
        make(**changes)


def test_joint_and_single_kinds() -> None:
    joint = make(kind="joint", order=["joint"], matrix=[[0.5, 0.6]])
    assert joint.r.shape == (1, 2)
    single = make(kind="single", order=["A", "B"])
    assert single.kind == "single"


def test_nan_survives_json_as_null_and_aligned_reorders_columns() -> None:
    rm = make(baseline=[0.0, None], per_case={0: {"A": {"a1": 0.1}}})
    text = rm.model_dump_json()
    assert "NaN" not in text and "null" in text
    back = RMatrix.from_json(text)
    assert math.isnan(back.r[1, 1]) and math.isnan(back.baseline_row[1])
    assert back.per_case == {0: {"A": {"a1": 0.1}}}
    aligned = back.aligned(["B", "C", "A"])
    np.testing.assert_array_equal(aligned[0], [0.2, np.nan, 0.1])


def test_from_json_names_the_field() -> None:
    with pytest.raises(TrackingError, match=r"^here: seed: Field required$"):
        RMatrix.from_json('{"strategy": "x", "order": ["A"], "centers": ["A"], "matrix": [[0.1]]}', "here")


def test_log_and_load_round_trip(tmp_path) -> None:
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    exp = client.create_experiment("e", artifact_location=str(tmp_path / "art"))
    run_id = client.create_run(exp).info.run_id
    rm = make()
    log_r_matrix(client, run_id, rm)
    loaded = load_r_matrix(client, run_id)
    assert loaded.model_dump(exclude={"matrix"}) == rm.model_dump(exclude={"matrix"})
    np.testing.assert_array_equal(loaded.r, rm.r)
    empty = client.create_run(exp).info.run_id
    with pytest.raises(TrackingError, match=f"run {empty}: no r_matrix.json artifact"):
        load_r_matrix(client, empty)
    client.log_text(empty, "{oops", "r_matrix.json")
    with pytest.raises(TrackingError, match=r"r_matrix\.json is not JSON"):
        load_r_matrix(client, empty)
