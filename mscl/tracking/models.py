"""Stage models as MLflow models: logging one per stage run, registering one, resolving a reference.

Each stage run gets a pyfunc model (an MLflow 3 LoggedModel, ``models:/m-...``) holding the weights, the
:class:`~mscl.predict.settings.SegmenterSettings` and a signature, logged "from code"
(:mod:`mscl.predict.mlflow_model`); its id is tagged on the stage run (``mscl.model_id``). ``mscl train
--register NAME`` registers the final stage's model and points an alias (``champion``) at the version.
"""

from __future__ import annotations

import tempfile
import warnings
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path

import mlflow
import torch
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types.schema import AnyType, ColSpec, ParamSchema, ParamSpec, Schema

from mscl.errors import TrackingError, first_line
from mscl.predict.segmenter import write_model_files
from mscl.predict.settings import SegmenterSettings
from mscl.tracking import tree
from mscl.tracking.checkpoints import get_run, stage_run

REQUIREMENTS = ("mscl", "torch", "monai", "torchio", "nibabel", "mlflow")
"""The packages a stage model needs, pinned to the versions it was logged with."""
MODELS_PREFIX = "models:/"
MODEL_CODE = resources.files("mscl.predict") / "mlflow_model.py"
"""The file MLflow runs to load a stage model (models from code)."""
QUIET_WARNINGS = ("Failed to infer signature from type hint", ".*An input example was not provided")
"""MLflow's advice for models without type hints or input example: the signature is given explicitly, and
an input example would be a whole scan."""


def signature(settings: SegmenterSettings) -> ModelSignature:
    """A column ``image`` (NIfTI paths or 3D arrays) in, one ``mask`` per row out; params ``threshold``
    and ``output`` (``mask`` or ``probseg``)."""
    return ModelSignature(
        inputs=Schema([ColSpec(AnyType(), "image")]),
        outputs=Schema([ColSpec(AnyType(), "mask")]),
        params=ParamSchema(
            [
                ParamSpec("threshold", "double", settings.eval.threshold),
                ParamSpec("output", "string", "mask"),
            ]
        ),
    )


def requirements() -> list[str]:
    """``name==version`` of every package of :data:`REQUIREMENTS` (no slow inference by MLflow)."""
    return [f"{name}=={metadata.version(name)}" for name in REQUIREMENTS]


def log_stage_model(
    client: MlflowClient, run_id: str, network: torch.nn.Module, settings: SegmenterSettings
) -> str:
    """Log ``network`` as the MLflow model of the active stage run ``run_id``; returns the model id.

    One ``log_model`` call, then one tag on the stage run (``mscl.model_id``).
    """
    with tempfile.TemporaryDirectory() as tmp:
        artifacts = {key: str(path) for key, path in write_model_files(network, settings, Path(tmp)).items()}
        with warnings.catch_warnings():
            for message in QUIET_WARNINGS:
                warnings.filterwarnings("ignore", message=message, category=UserWarning)
            info = mlflow.pyfunc.log_model(
                name=tree.STAGE_MODEL_NAME,
                python_model=str(MODEL_CODE),
                artifacts=artifacts,
                signature=signature(settings),
                pip_requirements=requirements(),
                tags={tree.STAGE_TAG: str(settings.stage), tree.CENTER_TAG: settings.centers[-1]},
            )
    client.set_tag(run_id, tree.MODEL_ID_TAG, info.model_id)
    return info.model_id


def register_final_model(client: MlflowClient, parent_run_id: str, name: str, alias: str) -> str:
    """Register the last stage's model of the study ``parent_run_id`` as a new version of ``name`` and point
    ``alias`` at it; returns ``models:/NAME@ALIAS``.

    Raises:
        TrackingError: the last stage run has no model.
    """
    stage = stage_run(client, parent_run_id)
    model_id = stage.data.tags.get(tree.MODEL_ID_TAG)
    if not model_id:
        raise TrackingError(f"run {stage.info.run_id} has no model to register ({tree.MODEL_ID_TAG} tag)")
    version = mlflow.register_model(f"{MODELS_PREFIX}{model_id}", name)
    client.set_registered_model_alias(name, alias, version.version)
    return f"{MODELS_PREFIX}{name}@{alias}"


@dataclass(frozen=True)
class ModelRef:
    """A model found from what the user gave: its loadable URI and the stage run it was logged under."""

    uri: str
    model_id: str
    run_id: str


def resolve_model(client: MlflowClient, ref: str, stage: int | None = None) -> ModelRef:
    """The model ``ref`` names: ``models:/NAME@ALIAS``, ``models:/NAME/VERSION``, ``models:/<model id>``,
    or a run id (a stage run, or the parent run of a study: its last stage, or ``stage``).

    Raises:
        TrackingError: one line naming what was not found.
    """
    if not ref.startswith(MODELS_PREFIX):
        run = stage_run(client, ref, stage)
        model_id = run.data.tags.get(tree.MODEL_ID_TAG)
        if not model_id:
            raise TrackingError(
                f"run {run.info.run_id} has no MLflow model (logged before stage models existed?); "
                f"`mscl evaluate --run-id {run.info.run_id}` still reads its checkpoint"
            )
        return ModelRef(f"{MODELS_PREFIX}{model_id}", model_id, run.info.run_id)
    if stage is not None:
        raise TrackingError(f"--stage applies to a run id, not to the model {ref}")
    model_id = _registered_model_id(client, ref.removeprefix(MODELS_PREFIX))
    try:
        model = client.get_logged_model(model_id)
    except MlflowException:
        raise TrackingError(f"model {ref} not found in {client.tracking_uri}") from None
    get_run(client, model.source_run_id or "")
    return ModelRef(f"{MODELS_PREFIX}{model_id}", model_id, model.source_run_id or "")


def _registered_model_id(client: MlflowClient, rest: str) -> str:
    """The model id behind ``NAME@ALIAS`` or ``NAME/VERSION``; any other text is taken as a model id."""
    name, at, alias = rest.partition("@")
    base, slash, number = rest.partition("/")
    try:
        if at:
            version = client.get_model_version_by_alias(name, alias)
        elif slash:
            version = client.get_model_version(base, number)
        else:
            return rest
    except MlflowException as exc:
        raise TrackingError(
            f"model {MODELS_PREFIX}{rest} not found in {client.tracking_uri} ({first_line(exc)})"
        ) from None
    model_id = version.model_id or (version.source or "").removeprefix(MODELS_PREFIX)
    if not model_id.startswith("m-"):
        raise TrackingError(
            f"model {MODELS_PREFIX}{rest} is not an mscl stage model (source {version.source})"
        )
    return model_id
