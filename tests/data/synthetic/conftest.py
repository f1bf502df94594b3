"""The tiny synthetic dataset, generated once per test session and shared read-only."""

from __future__ import annotations

from pathlib import Path

import pytest

from mscl.config import ExperimentConfig, load_config
from mscl.data.manifest import DatasetManifest
from mscl.data.synthetic.generator import generate_dataset


@pytest.fixture(scope="session")
def tiny_config() -> ExperimentConfig:
    """The ``tiny`` preset (6 mm, 3 subjects per center)."""
    return load_config("tiny")


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory, tiny_config: ExperimentConfig) -> Path:
    """The tiny synthetic dataset directory (all eight centers, one worker). Do not modify it."""
    out = tmp_path_factory.mktemp("synthetic") / "tiny"
    generate_dataset(out, tiny_config, quiet=True)
    return out


@pytest.fixture(scope="session")
def tiny_manifest(tiny_dataset: Path) -> DatasetManifest:
    """The tiny dataset's ``dataset.json``."""
    return DatasetManifest.read(tiny_dataset)
