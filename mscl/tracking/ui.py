"""The MLflow UI: a new experiment that opens on its runs table, the continual metrics as visible columns.

MLflow's UI keeps the runs table's columns in the browser (local storage), with one exception: a *saved
view*, an experiment tag ``mlflow.sharedViewState.<id>`` holding the table's state, which the UI applies when
the URL carries ``viewStateShareKey=<id>`` (and lists in its views menu, MLflow 3.17 and later). Every
experiment mscl creates gets such a view (:func:`experiment_tags`) and the tag
``mlflow.experimentKind=custom_model_development`` (a machine-learning experiment: the UI opens on runs, not
traces); :func:`runs_url` is the address that opens it. Only :func:`ui_lines` imports MLflow.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from mscl.config import DEFAULT_METRICS
from mscl.tracking import tree
from mscl.tracking.uri import is_http

DEFAULT_PORT = 5000
DEFAULT_UI = f"http://127.0.0.1:{DEFAULT_PORT}"
"""Where ``mlflow ui`` serves by default."""
VIEW_SUMMARIES = ("acc", "bwt", "forgetting", "fwt")
"""The parent metrics the view shows, of the headline metric: ``acc/<metric>``, ``bwt/<metric>``, ..."""
VIEW_TAGS = (tree.STRATEGY_TAG, tree.SEED_TAG, tree.STAGE_TAG, tree.CENTER_TAG)
"""The run tags the view shows: which study and, on stage runs, which stage."""


def column(kind: str, key: str) -> str:
    """The UI's name of a runs-table column, e.g. ``metrics.`acc/dice```` (``kind``: ``attributes``,
    ``metrics``, ``params`` or ``tags``)."""
    return f"{kind}.`{key}`"


def runs_view(metric: str = DEFAULT_METRICS[0]) -> dict[str, Any]:
    """The runs-table state of the saved view: the study tags and the key parent metrics of ``metric``."""
    metrics = [column("metrics", tree.summary_key(summary, metric)) for summary in VIEW_SUMMARIES]
    return {"selectedColumns": [*(column("tags", tag) for tag in VIEW_TAGS), *metrics]}


def saved_view(state: Mapping[str, Any], now_ms: int | None = None) -> str:
    """The value of a saved-view tag: MLflow 3.17's envelope (``name``, ``createdAt``, ``state`` as JSON
    text), the state's fields also at the top level, where earlier MLflow 3 UIs read a shared view."""
    stamp = int(time.time() * 1000) if now_ms is None else now_ms
    envelope = {"name": tree.RUNS_VIEW_NAME, "createdAt": stamp, "updatedAt": stamp}
    return json.dumps({**state, **envelope, "state": json.dumps(state)})


def experiment_tags(metric: str = DEFAULT_METRICS[0]) -> dict[str, str]:
    """The tags a new experiment is created with: its kind and the saved view of its runs table."""
    return {tree.EXPERIMENT_KIND_TAG: tree.EXPERIMENT_KIND, tree.RUNS_VIEW_TAG: saved_view(runs_view(metric))}


def runs_url(experiment_id: str, base: str = DEFAULT_UI, view: bool = True) -> str:
    """The address of an experiment's runs table (``#/experiments/<id>/runs``) in the table mode, with the
    saved view when ``view`` (the experiment has :data:`~mscl.tracking.tree.RUNS_VIEW_TAG`)."""
    query = {"viewStateShareKey": tree.RUNS_VIEW_ID} if view else {}
    query["compareRunsMode"] = "TABLE"
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs?{urlencode(query)}"


def ui_lines(tracking_uri: str, experiment: str, port: int = DEFAULT_PORT) -> list[str]:
    """What opens ``experiment``'s runs table: ``MLflow UI: <mlflow ui command>`` for a local store (a
    tracking server serves its own UI) and ``runs table: <address>``, with the saved view where the
    experiment has one.

    Raises:
        TrackingError: no experiment of that name.
    """
    from mlflow.tracking import MlflowClient

    from mscl.tracking.queries import experiment_id

    client = MlflowClient(tracking_uri)
    found = client.get_experiment(experiment_id(client, experiment))
    view = tree.RUNS_VIEW_TAG in found.tags
    if is_http(tracking_uri):
        return [f"runs table: {runs_url(found.experiment_id, tracking_uri, view)}"]
    serve = f"mlflow ui --backend-store-uri {tracking_uri}"
    serve += f" --port {port}" if port != DEFAULT_PORT else ""
    url = runs_url(found.experiment_id, f"http://127.0.0.1:{port}", view)
    return [f"MLflow UI: {serve}", f"runs table: {url}"]
