"""Lineage of a training run: everything an audit needs to prove later what produced a number.

On every parent run: the source (``mscl.git_commit``, ``mscl.git_dirty``), the environment (``pip freeze``
output and the source tree's lock file under ``environment/``), the seeds, the whole dataset as an MLflow
dataset input, and, once the stage loop has configured torch, the determinism flags it runs with. On every
stage run: the cases it trained on (its own centers' training split plus the replay memory) as an MLflow
dataset input whose digest covers their ids and checksums.

Under ``mlflow run`` (``MLFLOW_RUN_ID`` set) the parent runs become nested children of the project run.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import site
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, NamedTuple

import mlflow
import torch
from mlflow.entities import Dataset, DatasetInput, InputTag, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from mscl.config import ExperimentConfig
from mscl.data.dataset import PreparedDataset
from mscl.data.manifest import DatasetManifest
from mscl.errors import TrackingError
from mscl.protocol.observers import StudyObserver
from mscl.strategies.base import StagePlan, Strategy
from mscl.tracking.artifacts import file_sha256 as file_sha256  # re-exported: it used to live here
from mscl.tracking.tree import (
    FREEZE_ARTIFACT,
    GIT_COMMIT_TAG,
    GIT_DIRTY_TAG,
    GIT_STATUS_ARTIFACT,
    INPUTS_DIGEST_TAG,
    LOCK_ARTIFACT,
    ORDER_SEED_TAG,
    PROJECT_RUN_TAG,
    STUDY_CELL_TAG,
    STUDY_RUN_TAG,
)
from mscl.tracking.uri import is_http

PACKAGE_DIR = Path(__file__).resolve().parents[1]
LOCK_FILE = PACKAGE_DIR.parent / "requirements" / "lock.txt"
PROJECT_RUN_ENV = "MSCL_PROJECT_RUN_ID"
UNKNOWN = "unknown"
_DIGEST_CHARS = 16  # MLflow stores at most 36 characters of a dataset digest


@dataclass(frozen=True)
class GitState:
    """The source checkout of the mscl package: commit, whether it has changes, and which."""

    commit: str
    dirty: str  # "true", "false" or "unknown"
    status: str = ""


def git_state(folder: Path = PACKAGE_DIR) -> GitState:
    """Commit and dirty flag of the git checkout holding ``folder`` (the package's source folder).

    ``unknown`` when git is missing or ``folder`` is not tracked in a checkout (e.g. an installed wheel,
    even one inside a git repository's ignored ``.venv``). Untracked files count as changes.
    """
    try:
        commit = _git(folder, "rev-parse", "HEAD")
        _git(folder, "ls-files", "--error-unmatch", "__init__.py")
        status = _git(folder, "status", "--porcelain")
    except (OSError, subprocess.CalledProcessError):
        return GitState(UNKNOWN, UNKNOWN)
    return GitState(commit, "true" if status else "false", status)


def _git(folder: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(folder), *args], capture_output=True, text=True, check=True, timeout=30
    )
    return done.stdout.strip()


FREEZE_SKIPPED = frozenset({"pip", "setuptools", "wheel", "distribute"})  # what ``pip freeze`` leaves out


def pip_freeze(path: Sequence[str] | None = None) -> str:
    """The installed distributions in ``pip freeze --exclude-editable``'s format (that of
    ``requirements/lock.txt``), read from ``importlib.metadata`` in-process instead of a ``pip`` subprocess
    (about a second per run): ``name==version``, ``name @ url`` for a direct-URL install, editable ones left
    out; the first of a name on ``path`` (default ``sys.path``) wins, as for imports. Folders a package
    vendors inside site-packages and puts on ``sys.path`` when imported (``import ray`` adds
    ``ray/thirdparty_files`` with its own colorama and psutil) are not the environment's and are left
    out, as a ``pip freeze`` in a new process leaves them."""
    lines: dict[str, str] = {}
    for dist in metadata.distributions(path=environment_paths(sys.path if path is None else path)):
        name = dist.metadata["Name"]
        key = normalize_name(name or "")
        if not name or key in lines or key in FREEZE_SKIPPED:
            continue
        direct = json.loads(dist.read_text("direct_url.json") or "{}")
        if direct.get("dir_info", {}).get("editable"):
            lines[key] = ""
        elif direct.get("url") and "archive_info" not in direct:
            lines[key] = f"{name} @ {direct['url']}"
        else:
            lines[key] = f"{name}=={dist.version}"
    return "".join(f"{line}\n" for _, line in sorted(lines.items()) if line)


def environment_paths(path: Sequence[str], site_dirs: Sequence[str] | None = None) -> list[str]:
    """``path`` without the folders nested inside a site-packages folder (``site_dirs``, default the
    interpreter's and the user's): those are a package's vendored copies, not installed distributions."""
    if site_dirs is None:
        site_dirs = [*site.getsitepackages(), site.getusersitepackages()]
    roots = [os.path.realpath(d) for d in site_dirs]
    return [
        p for p in path if not any(os.path.realpath(p or ".").startswith(root + os.sep) for root in roots)
    ]


def normalize_name(name: str) -> str:
    """A distribution name in its PEP 503 normal form (``PyYAML`` -> ``pyyaml``, ``typing_extensions`` ->
    ``typing-extensions``)."""
    return re.sub(r"[-_.]+", "-", name.strip()).lower()


def parse_requirements(text: str) -> dict[str, str]:
    """``{normalized name: version}`` of the ``name==version`` (or ``name @ url``) lines of a freeze/lock."""
    packages = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        name, sep, version = line.partition("==")
        if not sep:
            name, _, version = line.partition(" @ ")
        packages[normalize_name(name)] = version.strip()
    return packages


def project_run_id() -> str | None:
    """The ``mlflow run`` project run to nest parent runs under, if any.

    ``mlflow run`` passes its run in ``MLFLOW_RUN_ID``, which ``mlflow.start_run`` would resume. The id is
    moved to ``MSCL_PROJECT_RUN_ID`` (which users may also set themselves), so that every seed's parent run
    is a new nested child of the project run instead.
    """
    run_id = os.environ.pop("MLFLOW_RUN_ID", None)
    if run_id:
        os.environ[PROJECT_RUN_ENV] = run_id
    return os.environ.get(PROJECT_RUN_ENV) or None


@dataclass(frozen=True)
class GridLink:
    """Where a parent run sits in an ``mscl study`` grid: the study run it nests under and its cell."""

    study_run_id: str
    cell: str


def start_run_options(
    cfg: ExperimentConfig, resume: bool = False, link: GridLink | None = None
) -> dict[str, Any]:
    """Keyword arguments of ``mlflow.start_run`` for a parent run: study or project nesting, system metrics.

    A new parent run of a study grid (``link``) is nested under the study run and tagged with it and its
    cell; otherwise, under ``mlflow run``, it is nested under the project run and tagged ``mscl.project_run``.
    A resumed one keeps the nesting it was created with.

    Raises:
        TrackingError: ``tracking.system_metrics`` is on but ``psutil`` is not installed.
    """
    options: dict[str, Any] = {}
    project = project_run_id()
    if link is not None and not resume:
        tags = {STUDY_RUN_TAG: link.study_run_id, STUDY_CELL_TAG: link.cell}
        options |= {"parent_run_id": link.study_run_id, "tags": tags}
    elif project and not resume:
        options |= {"parent_run_id": project, "tags": {PROJECT_RUN_TAG: project}}
    if cfg.tracking.system_metrics:
        import importlib.util

        if importlib.util.find_spec("psutil") is None:
            raise TrackingError("tracking.system_metrics needs the psutil package: pip install psutil")
        options["log_system_metrics"] = True
    return options


def log_lineage(
    client: MlflowClient, run_id: str, cfg: ExperimentConfig, seed: int, dataset: PreparedDataset
) -> None:
    """Log source, environment, seeds and the dataset input on the parent run ``run_id``."""
    git = git_state()
    order_seed = cfg.protocol.order_seed if cfg.protocol.order_seed is not None else seed
    tags = {GIT_COMMIT_TAG: git.commit, GIT_DIRTY_TAG: git.dirty, ORDER_SEED_TAG: str(order_seed)}
    client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])
    client.log_text(run_id, pip_freeze(), FREEZE_ARTIFACT)
    if git.status:
        client.log_text(run_id, git.status + "\n", GIT_STATUS_ARTIFACT)
    if LOCK_FILE.is_file():
        client.log_text(run_id, LOCK_FILE.read_text(encoding="utf-8"), LOCK_ARTIFACT)
    profile = {"cases": len(dataset.manifest.cases), "sha256": dataset.manifest.digest()}
    _log_input(client, run_id, dataset.manifest.name, _source(dataset), profile, context="dataset")


def runtime_tags(device: torch.device) -> dict[str, str]:
    """The interpreter, torch build and determinism flags of this process, as run tags."""
    return {
        "mscl.python": platform.python_version(),
        "mscl.platform": platform.platform(),
        "mscl.torch_version": torch.__version__,
        "mscl.cuda": torch.version.cuda or "none",
        "mscl.device": str(device),
        "mscl.deterministic_algorithms": str(torch.are_deterministic_algorithms_enabled()).lower(),
        "mscl.cudnn_deterministic": str(torch.backends.cudnn.deterministic).lower(),
        "mscl.cudnn_benchmark": str(torch.backends.cudnn.benchmark).lower(),
        "mscl.num_threads": str(torch.get_num_threads()),
    }


class InputCase(NamedTuple):
    """One case a stage trained on: its id, array checksums and where it came from (dataset or memory)."""

    id: str
    image_sha256: str
    label_sha256: str
    origin: str


@dataclass(frozen=True)
class CaseSet:
    """The data of one stage: its own centers' training cases plus the replay memory."""

    name: str
    source: str
    manifest: DatasetManifest
    cases: tuple[InputCase, ...]

    def digest(self) -> str:
        """sha256 over the sorted (id, image sha256, label sha256) and the preprocessing settings."""
        payload = {
            "preprocessing": self.manifest.preprocessing.model_dump(mode="json"),
            "cases": sorted((c.id, c.image_sha256, c.label_sha256) for c in self.cases),
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def stage_inputs(dataset: PreparedDataset, stage: StagePlan, memory: Iterable[dict[str, Any]]) -> CaseSet:
    """What ``stage`` trains on: the training split of its centers plus the memory rows (key, checksums)."""
    own = [
        InputCase(c.id, c.image_sha256, c.label_sha256, "dataset")
        for c in dataset.manifest.cases_of(split="train")
        if c.center in stage.train_centers
    ]
    replayed = [InputCase(r["key"], r["image_sha256"], r["label_sha256"], "memory") for r in memory]
    name = f"{dataset.manifest.name}/{stage.name}"
    return CaseSet(name, _source(dataset), dataset.manifest, tuple(own + replayed))


def log_stage_inputs(client: MlflowClient, stage_run_id: str, inputs: CaseSet) -> str:
    """Log a stage's cases as an MLflow dataset input (context ``train``) and tag its full digest.

    Returns:
        The full sha256 digest of the stage's inputs.
    """
    digest = inputs.digest()
    memory = sum(c.origin == "memory" for c in inputs.cases)
    profile = {"cases": len(inputs.cases), "memory_cases": memory, "sha256": digest}
    _log_input(client, stage_run_id, inputs.name, inputs.source, profile, context="train")
    client.set_tag(stage_run_id, INPUTS_DIGEST_TAG, digest)
    return digest


def _log_input(
    client: MlflowClient, run_id: str, name: str, source: str, profile: dict[str, Any], context: str
) -> None:
    """Log a dataset input; MLflow keeps 36 digest characters, the profile keeps the full sha256.

    Seeds trained in parallel log the same dataset at once; with a SQLite store the second insert of the
    dataset row fails on its unique constraint. The row then exists, so one retry links the run to it. A
    tracking server's failures are not retried here: MLflow's client has retried them already.
    """
    dataset = Dataset(
        name=name,
        digest=profile["sha256"][:_DIGEST_CHARS],
        source_type="local",
        source=json.dumps({"uri": source}),
        profile=json.dumps(profile),
    )
    inputs = [DatasetInput(dataset, [InputTag("mlflow.data.context", context)])]
    try:
        client.log_inputs(run_id, inputs)
    except MlflowException:
        if is_http(client.tracking_uri):  # a server's failures were retried by MLflow's client already
            raise
        client.log_inputs(run_id, inputs)


def _source(dataset: PreparedDataset) -> str:
    return dataset.directory.resolve().as_uri()


def memory_rows(strategy: Strategy) -> list[dict[str, Any]]:
    """The replay memory's current samples (key, checksums), or none for strategies without memory."""
    memory = getattr(strategy, "memory", None)
    return memory.manifest() if memory is not None else []


class LineageObserver(StudyObserver):
    """Stage-loop observer logging lineage that exists only once the loop runs.

    Place it after :class:`mscl.tracking.stages.MlflowStudyObserver`, whose ``stage_started`` opens the stage
    run this observer logs the stage's inputs on.
    """

    def __init__(
        self,
        client: MlflowClient,
        parent_run_id: str,
        cfg: ExperimentConfig,
        dataset: PreparedDataset,
        strategy: Strategy,
    ) -> None:
        self.client, self.parent_run_id, self.cfg = client, parent_run_id, cfg
        self.dataset, self.strategy = dataset, strategy
        self._runtime_logged = False

    def stage_started(self, stage: StagePlan) -> None:
        """Log the runtime flags on the parent (first stage) and the stage's inputs on the stage run."""
        from mscl.engine.device import resolve_device

        if not self._runtime_logged:
            tags = runtime_tags(resolve_device(self.cfg.train.device))
            self.client.log_batch(self.parent_run_id, tags=[RunTag(k, v) for k, v in tags.items()])
            self._runtime_logged = True
        active = mlflow.active_run()
        if active is None or active.info.run_id == self.parent_run_id:
            raise RuntimeError("LineageObserver must follow MlflowStudyObserver (no stage run is open)")
        inputs = stage_inputs(self.dataset, stage, memory_rows(self.strategy))
        log_stage_inputs(self.client, active.info.run_id, inputs)
