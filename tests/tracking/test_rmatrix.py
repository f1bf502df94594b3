"""The r_matrix.json model: format 2 (one matrix per metric), format 1 read back, validation, round trip."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from pydantic import ValidationError

from mscl.errors import TrackingError
from mscl.tracking.rmatrix import FORMAT, MetricMatrix, RMatrix, load_r_matrix, log_r_matrix

BASE = {"strategy": "replay", "seed": 3, "order": ["B", "A"], "centers": ["A", "B"]}
VOLUME = {"higher_is_better": False, "bounds": (0.0, None), "matrix": [[1.5, 0.0], [12.0, 3.25]]}


def make(dice: dict | None = None, **changes) -> RMatrix:
    metrics = {
        "dice": {"matrix": [[0.1, 0.2], [0.3, float("nan")]], **(dice or {})},
        "volume_diff_ml": VOLUME,
    }
    return RMatrix(**{**BASE, "metrics": metrics, **changes})


@pytest.mark.parametrize(
    ("dice", "changes", "message"),
    [
        ({"matrix": [[0.1, 0.2]]}, {}, "dice: matrix has 1 rows for 2 stages"),
        ({"matrix": [[0.1], [0.2]]}, {}, "dice: every matrix row needs 2 columns"),
        ({}, {"order": ["B", "C"]}, r"order names centers missing from centers: \['C'\]"),
        ({}, {"order": ["A", "A"]}, "order repeats a center"),
        ({"matrix": [[0.1, 1.2], [0.3, 0.4]]}, {}, r"scores must lie in \[0, 1\]"),
        ({"baseline": [0.1]}, {}, "dice: baseline needs 2 values"),
        ({"per_case": {2: {"A": {"a1": 0.5}}}}, {}, "dice: per_case stage indices"),
        ({}, {"kind": "joint"}, "a joint matrix has exactly one stage"),
        ({}, {"metrics": {}}, "metrics"),
    ],
)
def test_invalid_matrices_are_rejected(dice, changes, message) -> None:
    with pytest.raises(ValidationError, match=message):
        make(dice, **changes)


def test_an_unbounded_metric_accepts_large_values_but_not_negative_ones() -> None:
    rm = make()
    assert rm.metric("volume_diff_ml").r[1, 0] == 12.0
    with pytest.raises(ValidationError, match=r"scores must lie in \[0, inf\)"):
        MetricMatrix(**{**VOLUME, "matrix": [[-1.0, 0.0]]})


def test_metrics_keep_their_order_and_direction() -> None:
    rm = make()
    assert rm.format == FORMAT == 2
    assert list(rm.metrics) == ["dice", "volume_diff_ml"] and rm.headline == "dice"
    assert rm.metric().higher_is_better and not rm.metric("volume_diff_ml").higher_is_better
    with pytest.raises(KeyError, match="no 'ndsc' matrix; this study has dice, volume_diff_ml"):
        rm.metric("ndsc")


def test_joint_and_single_kinds() -> None:
    joint = RMatrix(
        **{**BASE, "kind": "joint", "order": ["joint"], "metrics": {"dice": {"matrix": [[0.5, 0.6]]}}}
    )
    assert joint.values().shape == (1, 2)
    assert make(kind="single", order=["A", "B"]).kind == "single"


def test_nan_survives_json_as_null_and_aligned_reorders_columns() -> None:
    rm = make({"baseline": [0.0, None], "per_case": {0: {"A": {"a1": 0.1, "a2": None}}}})
    text = rm.model_dump_json()
    assert "NaN" not in text and "null" in text
    back = RMatrix.from_json(text)
    assert math.isnan(back.values()[1, 1]) and math.isnan(back.metric().baseline_row[1])
    assert back.metric().per_case == {0: {"A": {"a1": 0.1, "a2": None}}}
    aligned = back.aligned(["B", "C", "A"])
    np.testing.assert_array_equal(aligned[0], [0.2, np.nan, 0.1])
    np.testing.assert_array_equal(back.aligned(["B", "A"], "volume_diff_ml")[1], [3.25, 12.0])


def test_format_1_files_read_as_a_dice_matrix() -> None:
    legacy = {
        **BASE,
        "kind": "continual",
        "metric": "dice@0.5",
        "matrix": [[0.1, 0.2], [0.3, None]],
        "baseline": [0.0, 0.05],
        "per_case": {"0": {"A": {"a1": 0.1}}},
    }
    rm = RMatrix.from_json(json.dumps(legacy))
    assert list(rm.metrics) == ["dice"] and rm.format == 2
    np.testing.assert_array_equal(rm.values(), [[0.1, 0.2], [0.3, np.nan]])
    assert rm.metric().baseline == [0.0, 0.05] and rm.metric().per_case == {0: {"A": {"a1": 0.1}}}
    with pytest.raises(TrackingError, match=r"format 1 metric must be 'dice@0\.5'"):
        RMatrix.from_json(json.dumps({**legacy, "metric": "dice@0.3"}))


def test_from_json_names_the_field() -> None:
    with pytest.raises(TrackingError, match=r"^here: seed: Field required$"):
        RMatrix.from_json(
            '{"format": 2, "strategy": "x", "order": ["A"], "centers": ["A"], '
            '"metrics": {"dice": {"matrix": [[0.1]]}}}',
            "here",
        )


def test_log_and_load_round_trip(tmp_path) -> None:
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    exp = client.create_experiment("e", artifact_location=str(tmp_path / "art"))
    run_id = client.create_run(exp).info.run_id
    rm = make()
    log_r_matrix(client, run_id, rm)
    loaded = load_r_matrix(client, run_id)
    for name in rm.metrics:
        np.testing.assert_array_equal(loaded.values(name), rm.values(name))
    assert loaded.model_dump(exclude={"metrics"}) == rm.model_dump(exclude={"metrics"})
    empty = client.create_run(exp).info.run_id
    with pytest.raises(TrackingError, match=f"run {empty}: no r_matrix.json artifact"):
        load_r_matrix(client, empty)
    client.log_text(empty, "{oops", "r_matrix.json")
    with pytest.raises(TrackingError, match=r"r_matrix\.json is not JSON"):
        load_r_matrix(client, empty)
    bad = client.create_run(exp).info.run_id
    (tmp_path / "r_matrix.json").write_bytes(b'{"strategy": "\xff"}')
    client.log_artifact(bad, str(tmp_path / "r_matrix.json"))
    with pytest.raises(TrackingError, match=r"r_matrix\.json is not UTF-8 text"):
        load_r_matrix(client, bad)
