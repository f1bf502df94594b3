"""A tracking store shared by each report test module (creating one runs MLflow's migrations)."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient
from report_cases import Store


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """One sqlite store per test module, with its artifacts beside it."""
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root}/mlflow.db"
    return Store(uri, MlflowClient(tracking_uri=uri), root)
