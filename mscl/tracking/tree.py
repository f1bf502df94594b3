"""Stage contract 2 in one module: the names of the MLflow run tree of a study.

Every run name, tag, metric key and artifact path of the tree is defined here and only here; the writer
(:mod:`mscl.tracking.runs`), the readers (resume, checkpoints, queries, evaluate), the audit and the report
use these names. docs/tracking.md draws the tree::

    <strategy>-seed<k>                     parent run: tags below, params = flattened config
    ├── config.yaml, dataset.json, r_matrix.json, environment/...
    ├── metrics acc/<metric>, bwt/<metric>, bwt/<metric>/<center>, fwt/<metric>, forgetting/<metric>,
    │   zero_shot/<metric>/stage<i>, wall_time_s
    └── stage<i>-<center>                  one nested run per stage
        ├── checkpoint/model.pt            weights + strategy state, sha256 in tag mscl.checkpoint_sha256
        ├── per_case_scores.json           {metric: {center: {case: score}}}
        ├── memory_manifest.json           (replay)
        └── metrics test/<metric>/<center>, train/<name> per epoch, time/<part>_s, stage_seconds,
            strategy/state_bytes

This module imports nothing heavy: strategies and the CLI may use it without pulling MLflow in.
"""

from __future__ import annotations

from collections.abc import Mapping


# Run names
def parent_run_name(strategy: str, seed: int) -> str:
    """The parent run of a (strategy, seed) study, e.g. ``replay-seed0``."""
    return f"{strategy}-seed{seed}"


def stage_run_name(index: int, center: str) -> str:
    """The nested run of stage ``index`` (0-based), e.g. ``stage1-BWH`` (1-based in the name)."""
    return f"stage{index + 1}-{center}"


def evaluate_run_name(source: str) -> str:
    """The run ``mscl evaluate`` logs for the scored run named ``source``."""
    return f"evaluate-{source}"


# Tags of MLflow itself that the tree relies on
PARENT_TAG = "mlflow.parentRunId"
MLFLOW_GIT_COMMIT_TAG = "mlflow.source.git.commit"

# Parent-run tags
STRATEGY_TAG = "mscl.strategy"
KIND_TAG = "mscl.kind"
SEED_TAG = "mscl.seed"
ORDER_TAG = "mscl.order"
ORDER_KIND_TAG = "mscl.order_kind"
ORDER_SEED_TAG = "mscl.order_seed"
DATASET_TAG = "mscl.dataset"
DATASET_DIGEST_TAG = "mscl.dataset_digest"
FINISHED_STAGES_TAG = "mscl.finished_stages"
PROJECT_RUN_TAG = "mscl.project_run"
GIT_COMMIT_TAG = "mscl.git_commit"
GIT_DIRTY_TAG = "mscl.git_dirty"

# Stage-run tags
STAGE_TAG = "mscl.stage"
CENTER_TAG = "mscl.center"
TRAIN_CENTERS_TAG = "mscl.train_centers"
CHECKPOINT_SHA_TAG = "mscl.checkpoint_sha256"
INPUTS_DIGEST_TAG = "mscl.inputs_digest"

# Artifact hashes: the sha256 of an artifact's bytes, tagged on the run holding it when it is written and
# checked whenever it is read back (:mod:`mscl.tracking.artifacts`)
CONFIG_SHA_TAG = "mscl.config_sha256"
DATASET_MANIFEST_SHA_TAG = "mscl.dataset_manifest_sha256"
R_MATRIX_SHA_TAG = "mscl.r_matrix_sha256"
PER_CASE_SHA_TAG = "mscl.per_case_sha256"
MEMORY_MANIFEST_SHA_TAG = "mscl.memory_manifest_sha256"
HASHED_TAG = "mscl.artifact_hashes"
"""Set (to ``1``) when a run is created by a version that hashes every artifact it writes: an artifact of
such a run without its hash tag is refused, while runs logged before (no such tag) are read unverified,
except their checkpoints, whose hash (``mscl.checkpoint_sha256``) was always recorded."""
HASHED_VERSION = "1"

# Evaluate and report runs
SOURCE_RUN_TAG = "mscl.source_run"
SPLIT_TAG = "mscl.split"
EVALUATE_KIND = "evaluate"
REPORT_KIND = "report"
REPORT_RUN_NAME = "report"

# Artifacts
CONFIG_ARTIFACT = "config.yaml"
DATASET_ARTIFACT = "dataset.json"
R_MATRIX_ARTIFACT = "r_matrix.json"
CHECKPOINT_DIR = "checkpoint"
CHECKPOINT_FILE = "model.pt"
CHECKPOINT_ARTIFACT = f"{CHECKPOINT_DIR}/{CHECKPOINT_FILE}"
PER_CASE_ARTIFACT = "per_case_scores.json"
LEGACY_PER_CASE_ARTIFACT = "per_case_dice.json"
"""Format 1 stage runs: ``{center: {case: dice}}``."""
MEMORY_MANIFEST_ARTIFACT = "memory_manifest.json"
ENVIRONMENT_DIR = "environment"
FREEZE_ARTIFACT = f"{ENVIRONMENT_DIR}/pip-freeze.txt"
LOCK_ARTIFACT = f"{ENVIRONMENT_DIR}/lock.txt"
GIT_STATUS_ARTIFACT = f"{ENVIRONMENT_DIR}/git-status.txt"

ARTIFACT_SHA_TAGS: dict[str, str] = {
    CHECKPOINT_ARTIFACT: CHECKPOINT_SHA_TAG,
    CONFIG_ARTIFACT: CONFIG_SHA_TAG,
    DATASET_ARTIFACT: DATASET_MANIFEST_SHA_TAG,
    R_MATRIX_ARTIFACT: R_MATRIX_SHA_TAG,
    PER_CASE_ARTIFACT: PER_CASE_SHA_TAG,
    MEMORY_MANIFEST_ARTIFACT: MEMORY_MANIFEST_SHA_TAG,
}
"""The tag holding each hashed artifact's sha256."""

# Metric keys
STAGE_SECONDS = "stage_seconds"
WALL_TIME = "wall_time_s"
SECONDS_PER_STAGE = "seconds_per_stage"
STRATEGY_STATE_BYTES = "strategy/state_bytes"
TEST_PREFIX = "test/"
LEGACY_TEST_PREFIX = "test_dice/"
"""Format 1 stage runs logged ``test_dice/<center>``."""


def test_key(metric: str, center: str) -> str:
    """A stage run's score of ``metric`` on ``center``'s test split: ``test/<metric>/<center>``."""
    return f"{TEST_PREFIX}{metric}/{center}"


def train_key(name: str) -> str:
    """A per-epoch training metric: ``train/<name>``."""
    return f"train/{name}"


def time_key(part: str) -> str:
    """Seconds a stage spent in one part (``load``, ``train``, ...): ``time/<part>_s``."""
    return f"time/{part}_s"


def summary_key(summary: str, metric: str, center: str | None = None) -> str:
    """A parent run's continual metric, e.g. ``bwt/dice`` or, per center, ``bwt/dice/BWH``."""
    return f"{summary}/{metric}" if center is None else f"{summary}/{metric}/{center}"


def zero_shot_key(metric: str, stage_number: int) -> str:
    """A parent run's mean of ``metric`` over all centers after stage ``stage_number`` (1-based)."""
    return f"zero_shot/{metric}/stage{stage_number}"


def test_scores(metrics: Mapping[str, float]) -> dict[str, dict[str, float]]:
    """``{metric: {center: score}}`` read back from a stage run's metrics (format 1 keys as ``dice``)."""
    scores: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        if key.startswith(TEST_PREFIX):
            metric, _, center = key.removeprefix(TEST_PREFIX).partition("/")
            scores.setdefault(metric, {})[center] = value
        elif key.startswith(LEGACY_TEST_PREFIX):
            scores.setdefault("dice", {})[key.removeprefix(LEGACY_TEST_PREFIX)] = value
    return scores
