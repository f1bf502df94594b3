"""Stage contract 2 in one module: the names of the MLflow run tree of a study.

Every run name, tag, metric key and artifact path of the tree is defined here and only here; the writer
(:mod:`mscl.tracking.runs`), the readers (resume, checkpoints, queries, evaluate), the audit and the report
use these names. docs/tracking.md draws the tree::

    <strategy>-seed<k>                     parent run: tags below, params = flattened config
    ├── config.yaml, dataset.json, r_matrix.json, environment/...
    ├── metrics acc/<metric>, bwt/<metric>, bwt/<metric>/<center>, fwt/<metric>, forgetting/<metric>,
    │   zero_shot/<metric>/stage<i>, wall_time_s
    └── stage<i>-<center>                  one nested run per stage: tags mscl.strategy, mscl.seed,
        │                                  mscl.stage, mscl.center; params STAGE_PARAMS + strategy.*
        ├── checkpoint/model.pt            weights + strategy state, sha256 in tag mscl.checkpoint_sha256
        ├── per_case_scores.json           {metric: {center: {case: score}}}
        ├── memory_manifest.json           (replay)
        ├── model: the stage's MLflow model (pyfunc), its id in tag mscl.model_id
        └── metrics test/<metric>/<center>, train/<name> per epoch, time/<part>_s, stage_seconds,
            strategy/state_bytes

``mscl extend`` adds stage runs (tag ``mscl.extension``, metrics ``before/<metric>/<center>`` and
``untrained/<metric>/<center>`` for the new centers, their ``dataset.json``), grows ``r_matrix.json``
(the previous one kept as ``r_matrix.v<k>.json``) and tags the parent ``mscl.extension<n>.*``.

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
EXTENSIONS_TAG = "mscl.extensions"
"""How many times ``mscl extend`` added centers to the study (absent: never)."""


def extension_tag(number: int, field: str) -> str:
    """A parent-run tag of extension ``number`` (1-based): ``mscl.extension<n>.<field>``, the fields being
    ``time`` (UTC, ISO 8601), ``centers``, ``dataset``, ``dataset_digest`` and ``runs`` (stage run ids)."""
    return f"mscl.extension{number}.{field}"


# Stage-run tags; a stage run also carries the parent's STRATEGY_TAG and SEED_TAG (to filter and compare
# stage runs by strategy), so a parent run is one with STRATEGY_TAG and without STAGE_TAG
STAGE_TAG = "mscl.stage"
"""The stage's 1-based position (the ``k`` of ``stage<k>-<center>``)."""
CENTER_TAG = "mscl.center"
TRAIN_CENTERS_TAG = "mscl.train_centers"
CHECKPOINT_SHA_TAG = "mscl.checkpoint_sha256"
INPUTS_DIGEST_TAG = "mscl.inputs_digest"
EXTENSION_TAG = "mscl.extension"
"""On a stage run added by ``mscl extend``: the extension's number (parent tags ``mscl.extension<n>.*``)."""
CONFIG_CHANGES_TAG = "mscl.config_changes"
"""On a stage run added by ``mscl extend``: settings changed from the study's config, ``key (old -> new)``."""

MAX_PARAM_CHARS = 6000
"""Params are logged cut to this many characters (MLflow's longest param value)."""

# Stage-run params, logged once when the stage run is created (MLflow params are immutable); a stage run
# also logs the strategy's own options under the parent's keys, ``strategy.<option>``
STAGE_PARAM = "stage"
CENTER_PARAM = "center"
TRAIN_CENTERS_PARAM = "train_centers"
TRAIN_CASES_PARAM = "train_cases"
"""The training-split cases of the stage's centers (a strategy's extra cases, e.g. replay's, not counted)."""
EPOCHS_PARAM = "epochs"
"""The epochs the stage trains: ``train.epochs`` capped by ``train.max_epochs``."""
FRESH_PARAM = "fresh"
"""``True`` when the stage starts from a newly initialised model."""
SEED_PARAM = "seed"
"""The study's seed, a param of the parent run too."""
STRATEGY_PARAM_PREFIX = "strategy."
STAGE_PARAMS = (STAGE_PARAM, CENTER_PARAM, TRAIN_CENTERS_PARAM, TRAIN_CASES_PARAM, EPOCHS_PARAM, FRESH_PARAM)

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

# Study runs (``mscl study``): one run over a grid of (strategy, seed, order) studies, each parent run of
# the grid nested under it and tagged with its cell
STUDY_KIND = "study"
STUDY_RUN_NAME = "study"
STUDY_RUN_TAG = "mscl.study_run"
STUDY_CELL_TAG = "mscl.study_cell"
STUDY_CELLS_TAG = "mscl.study_cells"
"""On the study run: how many cells its grid has."""
STUDY_FINISHED_TAG = "mscl.study_finished"
"""On the study run: how many of its cells have finished."""
STUDY_GRID_SHA_TAG = "mscl.study_grid_sha256"

# The MLflow UI: tags of a new experiment. ``mlflow.experimentKind`` makes the UI treat it as a machine
# learning experiment (it opens on the runs table, not on traces); ``mlflow.sharedViewState.<id>`` holds a
# saved view of the runs table (its visible columns), opened by the URL parameter ``viewStateShareKey=<id>``
# (:mod:`mscl.tracking.ui`)
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
RUNS_VIEW_ID = "mscl-runs"
RUNS_VIEW_TAG = f"mlflow.sharedViewState.{RUNS_VIEW_ID}"
RUNS_VIEW_NAME = "mscl: continual metrics"

# Stage models: one MLflow model (a LoggedModel, ``models:/<model id>``) per stage run, tagged on it; the
# final stage's model registered with ``--register NAME`` under an alias (``models:/NAME@champion``)
STAGE_MODEL_NAME = "model"
MODEL_ID_TAG = "mscl.model_id"
DEFAULT_MODEL_ALIAS = "champion"
MODEL_TIME_PART = "model"
"""``time/model_s``: the seconds a stage spent logging its model."""

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
STUDY_GRID_ARTIFACT = "study.json"


def archived_r_matrix_artifact(stages: int) -> str:
    """The parent's ``r_matrix.json`` of ``stages`` rows, kept when ``mscl extend`` grew it:
    ``r_matrix.v<stages>.json``."""
    return f"r_matrix.v{stages}.json"


ARTIFACT_SHA_TAGS: dict[str, str] = {
    CHECKPOINT_ARTIFACT: CHECKPOINT_SHA_TAG,
    CONFIG_ARTIFACT: CONFIG_SHA_TAG,
    DATASET_ARTIFACT: DATASET_MANIFEST_SHA_TAG,
    R_MATRIX_ARTIFACT: R_MATRIX_SHA_TAG,
    PER_CASE_ARTIFACT: PER_CASE_SHA_TAG,
    MEMORY_MANIFEST_ARTIFACT: MEMORY_MANIFEST_SHA_TAG,
    STUDY_GRID_ARTIFACT: STUDY_GRID_SHA_TAG,
}
"""The tag holding each hashed artifact's sha256 (archived R matrices: :func:`sha_tag`)."""


def sha_tag(artifact: str) -> str:
    """The tag holding ``artifact``'s sha256; ``r_matrix.v<k>.json`` -> ``mscl.r_matrix_sha256.v<k>``.

    Raises:
        KeyError: an artifact that is not hashed.
    """
    stem, _, rest = artifact.partition(".v")
    if f"{stem}.json" == R_MATRIX_ARTIFACT and rest.removesuffix(".json").isdigit():
        return f"{R_MATRIX_SHA_TAG}.v{rest.removesuffix('.json')}"
    return ARTIFACT_SHA_TAGS[artifact]


# Metric keys
STAGE_SECONDS = "stage_seconds"
WALL_TIME = "wall_time_s"
SECONDS_PER_STAGE = "seconds_per_stage"
STRATEGY_STATE_BYTES = "strategy/state_bytes"
TEST_PREFIX = "test/"
BEFORE_PREFIX = "before/"
UNTRAINED_PREFIX = "untrained/"
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


def before_key(metric: str, center: str) -> str:
    """On a stage run added by ``mscl extend``: the score on a new ``center`` of the weights the stage
    started from (the previous stage's checkpoint), ``before/<metric>/<center>``: that stage's R entry."""
    return f"{BEFORE_PREFIX}{metric}/{center}"


def untrained_key(metric: str, center: str) -> str:
    """On a stage run added by ``mscl extend``: the untrained model's score on a new ``center`` (its
    baseline entry), ``untrained/<metric>/<center>``."""
    return f"{UNTRAINED_PREFIX}{metric}/{center}"


def zero_shot_key(metric: str, stage_number: int) -> str:
    """A parent run's mean of ``metric`` over all centers after stage ``stage_number`` (1-based)."""
    return f"zero_shot/{metric}/stage{stage_number}"


def test_scores(metrics: Mapping[str, float], prefix: str = TEST_PREFIX) -> dict[str, dict[str, float]]:
    """``{metric: {center: score}}`` read back from a stage run's metrics (format 1 keys as ``dice``);
    ``prefix`` :data:`BEFORE_PREFIX` or :data:`UNTRAINED_PREFIX` reads those scores instead."""
    scores: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        if key.startswith(prefix):
            metric, _, center = key.removeprefix(prefix).partition("/")
            scores.setdefault(metric, {})[center] = value
        elif prefix == TEST_PREFIX and key.startswith(LEGACY_TEST_PREFIX):
            scores.setdefault("dice", {})[key.removeprefix(LEGACY_TEST_PREFIX)] = value
    return scores
