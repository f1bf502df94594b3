"""Reproducibility audit of a logged study: does everything a number came from still check out?

Each check recomputes what it can (array checksums, checkpoint hashes, the flattened config, the package
list) and compares it with what the parent run recorded (see :mod:`mscl.tracking.lineage`).
"""

from __future__ import annotations

import math
import operator
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from packaging.version import InvalidVersion, Version

from mscl.config import flatten_config
from mscl.data.dataset import PreparedDataset
from mscl.errors import ArtifactCorrupted, DataError, TrackingError
from mscl.tracking import tree
from mscl.tracking.artifacts import file_sha256, hash_problem, sha256_hex
from mscl.tracking.checkpoints import get_run, stage_runs
from mscl.tracking.lineage import LOCK_FILE, UNKNOWN, parse_requirements, pip_freeze
from mscl.tracking.queries import is_parent
from mscl.tracking.rmatrix import load_r_matrix
from mscl.tracking.tree import CHECKPOINT_ARTIFACT, CHECKPOINT_SHA_TAG, FREEZE_ARTIFACT, LOCK_ARTIFACT
from mscl.tracking.uri import connect_existing
from mscl.words import counted

SHOWN = 4  # differences named in a detail line


@dataclass(frozen=True)
class CheckResult:
    """One row of an audit: what was checked, whether it passed, and the evidence."""

    name: str
    passed: bool
    detail: str


def audit_run(
    run_id: str, data_dir: Path | None = None, tracking_uri: str | None = None
) -> list[CheckResult]:
    """Audit the parent run ``run_id`` of a study.

    Args:
        run_id: the (strategy, seed) parent run.
        data_dir: the dataset directory to verify; default the run's ``mscl.dataset`` tag.
        tracking_uri: explicit tracking URI (else MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here).

    Returns:
        One :class:`CheckResult` per check: source, config, dataset, packages vs lock, packages vs
        environment, checkpoints, R matrix.

    Raises:
        TrackingError: unreachable store, unknown run, or a run that is not a study's parent run.
    """
    client = MlflowClient(connect_existing(tracking_uri))
    run = get_run(client, run_id)
    if not is_parent(run):
        raise TrackingError(f"run {run_id} is not the parent run of an mscl study")
    stages = stage_runs(client, run)
    with tempfile.TemporaryDirectory() as tmp:
        artifacts = _Artifacts(client, Path(tmp))
        freeze = artifacts.text(run_id, FREEZE_ARTIFACT)
        return [
            check_source(run),
            check_config(run, artifacts.data(run_id, tree.CONFIG_ARTIFACT)),
            check_dataset(run, data_dir),
            check_packages_lock(freeze, _current_lock(artifacts, run_id)),
            check_packages_environment(freeze, pip_freeze()),
            check_checkpoints(stages, artifacts),
            check_r_matrix(client, run, stages),
        ]


class _Artifacts:
    """Downloads run artifacts into one scratch folder; a missing artifact reads as None."""

    def __init__(self, client: MlflowClient, folder: Path) -> None:
        self.client, self.folder = client, folder

    def path(self, run_id: str, artifact: str) -> Path | None:
        target = self.folder / run_id
        target.mkdir(exist_ok=True)
        try:
            return Path(self.client.download_artifacts(run_id, artifact, str(target)))
        except (MlflowException, OSError):
            return None

    def data(self, run_id: str, artifact: str) -> bytes | None:
        path = self.path(run_id, artifact)
        return path.read_bytes() if path is not None and path.is_file() else None

    def text(self, run_id: str, artifact: str) -> str | None:
        data = self.data(run_id, artifact)
        if data is None:
            return None
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise TrackingError(f"run {run_id}: {artifact} is not UTF-8 text") from None


def check_source(run: Run) -> CheckResult:
    """The run records the git commit it ran from, and the tree had no uncommitted changes."""
    tags = run.data.tags
    commit, dirty = tags.get(tree.GIT_COMMIT_TAG, UNKNOWN), tags.get(tree.GIT_DIRTY_TAG, UNKNOWN)
    mlflow_commit = tags.get(tree.MLFLOW_GIT_COMMIT_TAG)
    if commit == UNKNOWN:
        return CheckResult("source", False, "no git commit recorded (mscl.git_commit unknown or missing)")
    if mlflow_commit and mlflow_commit != commit:
        detail = f"{tree.GIT_COMMIT_TAG} {commit[:12]} but {tree.MLFLOW_GIT_COMMIT_TAG} {mlflow_commit[:12]}"
        return CheckResult("source", False, detail)
    if dirty != "false":
        state = "uncommitted changes (see environment/git-status.txt)" if dirty == "true" else "unknown state"
        return CheckResult("source", False, f"commit {commit[:12]} with {state}")
    return CheckResult("source", True, f"commit {commit[:12]}, clean tree")


def check_config(run: Run, config_yaml: bytes | None) -> CheckResult:
    """``config.yaml`` matches its logged sha256, and flattened equals the run's params (plus ``seed``)."""
    if config_yaml is None:
        return CheckResult("config", False, "no config.yaml artifact")
    problem = hash_problem(run.data.tags, tree.CONFIG_ARTIFACT, sha256_hex(config_yaml))
    prefix = f"{problem}; " if problem else ""
    try:
        mapping = yaml.safe_load(config_yaml.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError):
        return CheckResult("config", False, f"{prefix}config.yaml is not valid UTF-8 YAML")
    if not isinstance(mapping, dict):
        return CheckResult("config", False, f"{prefix}config.yaml is not a mapping")
    expected = {**flatten_config(mapping), "seed": run.data.tags.get(tree.SEED_TAG, "")}
    expected = {key: value[: tree.MAX_PARAM_CHARS] for key, value in expected.items()}
    differences = _differences(expected, run.data.params, "config.yaml", "params", operator.eq)
    if differences:
        return CheckResult("config", False, prefix + _summary(differences, "param(s) differ"))
    if problem:
        return CheckResult("config", False, problem)
    return CheckResult("config", True, f"{len(expected)} params equal config.yaml")


def check_dataset(run: Run, data_dir: Path | None) -> CheckResult:
    """Every array of the dataset directory matches its checksum, and the data digest is the logged one."""
    logged_dir = run.data.tags.get(tree.DATASET_TAG)
    directory = data_dir or (Path(logged_dir) if logged_dir else None)
    if directory is None:
        return CheckResult("dataset", False, f"no {tree.DATASET_TAG} tag; pass --data")
    try:
        with PreparedDataset(directory) as dataset:
            bad = dataset.verify()
            digest, cases = dataset.manifest.digest(), len(dataset.manifest.cases)
    except (DataError, OSError, ValueError) as exc:
        return CheckResult("dataset", False, str(exc))
    if bad:
        return CheckResult(
            "dataset", False, _summary([f"{case}" for case in bad], f"case(s) in {directory} fail sha256")
        )
    logged = run.data.tags.get(tree.DATASET_DIGEST_TAG, "")
    if digest != logged:
        return CheckResult(
            "dataset", False, f"digest {digest[:12]} of {directory} != logged {logged[:12] or '-'}"
        )
    return CheckResult(
        "dataset", True, f"{counted(cases, 'case')} of {directory} verified, digest {digest[:12]}"
    )


def check_packages_lock(freeze: str | None, lock: tuple[str, str] | None) -> CheckResult:
    """The run's ``pip freeze`` has exactly the lock's packages at the lock's (public) versions."""
    if freeze is None:
        return CheckResult("packages vs lock", False, f"no {FREEZE_ARTIFACT} artifact")
    if lock is None:
        return CheckResult("packages vs lock", False, f"no lock file ({LOCK_FILE.name} or {LOCK_ARTIFACT})")
    source, text = lock
    differences = _differences(
        parse_requirements(freeze), parse_requirements(text), "run", "lock", _same_public
    )
    if differences:
        return CheckResult(
            "packages vs lock", False, _summary(differences, f"package(s) differ from {source}")
        )
    return CheckResult("packages vs lock", True, f"{len(parse_requirements(text))} packages match {source}")


def check_packages_environment(freeze: str | None, current: str) -> CheckResult:
    """The run's ``pip freeze`` equals this environment's (exact versions)."""
    if freeze is None:
        return CheckResult("packages vs environment", False, f"no {FREEZE_ARTIFACT} artifact")
    packages = parse_requirements(freeze)
    differences = _differences(packages, parse_requirements(current), "run", "now", operator.eq)
    if differences:
        return CheckResult("packages vs environment", False, _summary(differences, "package(s) differ"))
    return CheckResult("packages vs environment", True, f"{len(packages)} packages match this environment")


def check_checkpoints(stages: list[Run], artifacts: _Artifacts) -> CheckResult:
    """Every stage's checkpoint is present and hashes to the sha256 tagged when it was logged."""
    if not stages:
        return CheckResult("checkpoints", False, "no stage runs")
    problems = []
    for stage in stages:
        name = stage.info.run_name or stage.info.run_id
        logged = stage.data.tags.get(CHECKPOINT_SHA_TAG)
        path = artifacts.path(stage.info.run_id, CHECKPOINT_ARTIFACT)
        if logged is None:
            problems.append(f"{name}: no {CHECKPOINT_SHA_TAG} tag")
        elif path is None:
            problems.append(f"{name}: no {CHECKPOINT_ARTIFACT}")
        elif file_sha256(path) != logged:
            problems.append(f"{name}: sha256 differs from the logged one")
    if problems:
        return CheckResult("checkpoints", False, _summary(problems, "checkpoint(s) fail"))
    return CheckResult("checkpoints", True, f"{len(stages)} checkpoints match their logged sha256")


def check_r_matrix(client: MlflowClient, run: Run, stages: list[Run]) -> CheckResult:
    """Every metric's ``r_matrix.json`` rows equal the stage runs' ``test/<metric>/<center>`` metrics (a
    center added by ``mscl extend`` after a stage: the next stage's ``before/<metric>/<center>``)."""
    run_id = run.info.run_id
    try:  # read unverified to name the values an edit changed; the hash is checked below
        rmatrix = load_r_matrix(client, run_id, run.info.artifact_uri, verify=False)
        load_r_matrix(client, run_id, run.info.artifact_uri, tags=run.data.tags)
        prefix = ""
    except ArtifactCorrupted as exc:
        prefix = str(exc).removeprefix(f"run {run_id}: ") + "; "
    except TrackingError as exc:
        return CheckResult("R matrix", False, str(exc).removeprefix(f"run {run_id}: "))
    if len(stages) != len(rmatrix.order):
        return CheckResult(
            "R matrix", False, f"{prefix}{len(rmatrix.order)} rows but {len(stages)} stage runs"
        )
    problems = []
    for stage, index, center in zip(stages, range(len(stages)), rmatrix.order, strict=True):
        name = stage.info.run_name or stage.info.run_id
        if stage.data.tags.get(tree.CENTER_TAG) != center:
            problems.append(f"{name}: row is {center}")
        logged = tree.test_scores(stage.data.metrics)
        if index + 1 < len(stages):  # centers added by an extension: scored by the next stage, before it
            later = tree.test_scores(stages[index + 1].data.metrics, tree.BEFORE_PREFIX)
            logged = {m: {**later.get(m, {}), **scores} for m, scores in logged.items()}
        for metric in rmatrix.metrics:
            row = rmatrix.values(metric)[index]
            for column, value in zip(rmatrix.centers, row, strict=True):
                found = logged.get(metric, {}).get(column, math.nan)
                if not (value == found or (math.isnan(value) and math.isnan(found))):
                    problems.append(f"{name} {metric} {column}: r_matrix {value:.4f}, metric {found:.4f}")
    if problems:
        return CheckResult("R matrix", False, prefix + _summary(problems, "value(s) differ"))
    if prefix:
        return CheckResult("R matrix", False, prefix.removesuffix("; "))
    metrics = ", ".join(rmatrix.metrics)
    return CheckResult(
        "R matrix", True, f"{len(stages)} rows of {metrics} equal the stage runs' test metrics"
    )


def _current_lock(artifacts: _Artifacts, run_id: str) -> tuple[str, str] | None:
    """The source tree's lock file, else the one the run logged; with a name for the detail line."""
    if LOCK_FILE.is_file():
        return "requirements/lock.txt", LOCK_FILE.read_text(encoding="utf-8")
    logged = artifacts.text(run_id, LOCK_ARTIFACT)
    return (f"the run's {LOCK_ARTIFACT}", logged) if logged is not None else None


def _same_public(a: str, b: str) -> bool:
    """Versions equal up to a local label (a lock's ``torch==2.13.0`` matches ``2.13.0+cpu``)."""
    try:
        return Version(a).public == Version(b).public
    except InvalidVersion:
        return a == b


def _differences(
    left: dict[str, str],
    right: dict[str, str],
    left_name: str,
    right_name: str,
    same: Callable[[str, str], bool],
) -> list[str]:
    """``key (left_name a, right_name b)`` for every key missing on one side or whose values differ."""
    return [
        f"{key} ({left_name} {left.get(key, '-')}, {right_name} {right.get(key, '-')})"
        for key in sorted(set(left) | set(right))
        if key not in left or key not in right or not same(left[key], right[key])
    ]


def _summary(items: list[str], what: str) -> str:
    more = f", and {len(items) - SHOWN} more" if len(items) > SHOWN else ""
    return f"{len(items)} {what}: " + "; ".join(items[:SHOWN]) + more
