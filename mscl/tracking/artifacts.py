"""Artifacts written with their sha256 and read back only after checking it.

Every artifact mscl reads back (checkpoints, ``config.yaml``, ``r_matrix.json``, ``per_case_scores.json``)
and the other JSON artifacts of the run tree (``dataset.json``, ``memory_manifest.json``) are uploaded
through :func:`log_file`, which tags the run holding the artifact with the sha256 of the uploaded bytes
(:data:`mscl.tracking.tree.ARTIFACT_SHA_TAGS`). :func:`download_verified` and :func:`hash_problem` check a
downloaded artifact against that tag before anything parses it: a corrupt or edited file is one error line
naming the run and the artifact.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from mscl import faults
from mscl.errors import ArtifactCorrupted, TrackingError
from mscl.tracking import tree


def sha256_hex(data: bytes) -> str:
    """sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def log_file(client: MlflowClient, run_id: str, path: Path, artifact: str) -> str:
    """Upload ``path`` as ``artifact`` of run ``run_id``, then tag its sha256; returns the sha256.

    ``path``'s file name must be the artifact's (MLflow keeps the file name; ``artifact`` adds the folder).
    """
    folder, _, name = artifact.rpartition("/")
    if Path(path).name != name:
        raise ValueError(f"{path} cannot be uploaded as {artifact}: the file names differ")
    digest = file_sha256(Path(path))
    faults.hit("upload")
    client.log_artifact(run_id, str(path), artifact_path=folder or None)
    faults.hit("uploaded")
    client.set_tag(run_id, tree.sha_tag(artifact), digest)
    return digest


def log_bytes(client: MlflowClient, run_id: str, data: bytes, artifact: str) -> str:
    """Upload ``data`` as ``artifact`` with its sha256 tag (see :func:`log_file`)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / artifact.rpartition("/")[2]
        path.write_bytes(data)
        return log_file(client, run_id, path, artifact)


def log_json(client: MlflowClient, run_id: str, value: Any, artifact: str) -> str:
    """Upload ``value`` as indented JSON (what ``MlflowClient.log_dict`` writes) with its sha256 tag."""
    return log_bytes(client, run_id, json.dumps(value, indent=2).encode("utf-8"), artifact)


def hash_problem(tags: Mapping[str, str], artifact: str, digest: str) -> str | None:
    """Why an artifact whose bytes hash to ``digest`` must not be used, or ``None`` when it matches.

    A run created before artifacts were hashed has no :data:`~mscl.tracking.tree.HASHED_TAG`: no hash was
    ever recorded for its artifacts, so they are accepted unverified. Its checkpoints are the exception:
    their ``mscl.checkpoint_sha256`` was always recorded and is always required.
    """
    tag = tree.sha_tag(artifact)
    logged = tags.get(tag)
    if logged is None:
        if artifact != tree.CHECKPOINT_ARTIFACT and tree.HASHED_TAG not in tags:
            return None  # logged before artifacts were hashed: there is no hash to check against
        return f"no {tag} tag to verify {artifact} with"
    if digest != logged:
        return f"{artifact} does not match its logged sha256 ({tag}): the file is corrupt or was changed"
    return None


def download_verified(client: MlflowClient, run: Run, artifact: str, folder: Path) -> Path:
    """Download ``artifact`` of ``run`` into ``folder`` and check it against its logged sha256.

    Raises:
        TrackingError: no such artifact.
        ArtifactCorrupted: no hash to check it with, or a hash mismatch; naming the run.
    """
    run_id = run.info.run_id
    try:
        path = Path(client.download_artifacts(run_id, artifact, str(folder)))
    except (MlflowException, OSError):
        raise TrackingError(f"run {run_id}: no {artifact} artifact") from None
    check_hash(run_id, run.data.tags, artifact, file_sha256(path))
    return path


def check_hash(run_id: str, tags: Mapping[str, str], artifact: str, digest: str) -> None:
    """Raise :class:`ArtifactCorrupted` naming the run and the artifact for a :func:`hash_problem`."""
    problem = hash_problem(tags, artifact, digest)
    if problem is not None:
        raise ArtifactCorrupted(f"run {run_id}: {problem}")
