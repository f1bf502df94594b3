"""Writing the stage runs of a study (stage contract 2): :class:`MlflowStudyObserver` opens a nested run per
stage with its tags and params, logs every epoch, and ends it with its scores, checkpoint and model.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import mlflow
import torch
from mlflow.entities import Param, Run, RunTag
from mlflow.tracking import MlflowClient

from mscl import faults
from mscl.config import ExperimentConfig
from mscl.data.manifest import DatasetManifest
from mscl.interrupts import deferred_interrupts
from mscl.protocol.loop import stage_epochs
from mscl.protocol.observers import StudyObserver
from mscl.protocol.results import StageOutcome
from mscl.strategies.base import StagePlan, state_nbytes
from mscl.tracking import tree
from mscl.tracking.artifacts import log_file, log_json
from mscl.tracking.runs import log_metrics


class MlflowStudyObserver(StudyObserver):
    """Turns the stage loop's events into nested MLflow runs under one parent run.

    Args:
        client: client of the tracking store.
        parent_run_id: the study's parent run.
        cfg: the resolved configuration (the checkpoint records the model settings).
        seed: the study's seed (tagged and logged on every stage run).
        manifest: the dataset the stages train on (each stage run logs its training cases).
        reattach: stage index -> an existing, unfinished stage run to continue (resume).
        stage_tags: more tags of every stage run it creates (``mscl extend``'s).
        count_stages: tag the parent ``mscl.finished_stages`` as each stage ends (``mscl extend`` tags
            the parent only once every new stage has ended).
        log_models: log every stage's model as an MLflow model
            (:func:`mscl.tracking.models.log_stage_model`).
        earlier: the centers the weights trained on before the first stage, with their datasets
            (``mscl extend``'s study), so that the models say what they were trained on.
    """

    def __init__(
        self,
        client: MlflowClient,
        parent_run_id: str,
        cfg: ExperimentConfig,
        seed: int,
        manifest: DatasetManifest,
        reattach: dict[int, str] | None = None,
        stage_tags: dict[str, str] | None = None,
        count_stages: bool = True,
        log_models: bool = True,
        earlier: Mapping[str, DatasetManifest] | None = None,
    ) -> None:
        self.client, self.parent_run_id, self.cfg, self.seed = client, parent_run_id, cfg, seed
        self.reattach = dict(reattach or {})
        self.stage_tags, self.count_stages = dict(stage_tags or {}), count_stages
        self.manifest, self.log_models = manifest, log_models
        self.datasets = {**dict.fromkeys(manifest.center_names(), manifest), **(earlier or {})}
        self._stage_run: str | None = None
        self._seen: list[str] = list(earlier or {})
        """Centers the carried weights have trained on (a fresh stage starts over)."""

    def stage_started(self, stage: StagePlan) -> None:
        """Open the nested run ``stage<k>-<center>`` with its tags and params (or re-open the one being
        resumed, adding only the tags and params it lacks: a param once logged is never changed)."""
        tags = stage_tags(self.cfg, self.seed, stage)
        params = stage_params(self.cfg, self.seed, stage, self.manifest)
        existing = self.reattach.pop(stage.index, None)
        if existing is not None:
            run: Run = mlflow.start_run(run_id=existing, nested=True)
            self._stage_run = run.info.run_id
            log_missing(self.client, run, tags, params)
            return
        created = {**tags, tree.HASHED_TAG: tree.HASHED_VERSION, **self.stage_tags}
        with deferred_interrupts() as received:  # created and tagged in one call, its id known at once
            run = mlflow.start_run(
                run_name=stage.name, nested=True, parent_run_id=self.parent_run_id, tags=created
            )
        self._stage_run = run.info.run_id
        if received:
            raise KeyboardInterrupt
        log_missing(self.client, run, {}, params)

    def epoch_finished(self, stage: StagePlan, epoch: int, metrics: dict[str, float]) -> None:
        """Log the epoch's training metrics in one batch (step = epoch)."""
        assert self._stage_run is not None, "epoch_finished outside a stage"
        values = {tree.train_key(k): v for k, v in metrics.items()}
        log_metrics(self.client, self._stage_run, values, step=epoch)

    def stage_finished(self, outcome: StageOutcome, model: torch.nn.Module) -> None:
        """Log the R rows, the checkpoint (weights and strategy state) and the memory manifest; close the
        stage run."""
        run_id = self._stage_run
        assert run_id is not None, "stage_finished without stage_started"
        rows = {
            tree.test_key(metric, center): score
            for metric, centers in outcome.scores.items()
            for center, score in centers.items()
        }
        timings = {tree.time_key(part): seconds for part, seconds in outcome.timings.items()}
        if self.log_models:
            timings[tree.time_key(tree.MODEL_TIME_PART)] = self._log_model(outcome.stage, run_id, model)
        sizes = {tree.STRATEGY_STATE_BYTES: state_nbytes(outcome.strategy_state)}
        log_metrics(self.client, run_id, {**rows, **timings, **sizes, tree.STAGE_SECONDS: outcome.seconds})
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / tree.CHECKPOINT_FILE
            payload = {
                "state_dict": model.state_dict(),
                "model": self.cfg.model.model_dump(),
                "strategy": outcome.strategy_state,
            }
            torch.save(payload, path)
            log_file(self.client, run_id, path, tree.CHECKPOINT_ARTIFACT)
            if outcome.memory_manifest is not None:
                log_json(self.client, run_id, outcome.memory_manifest, tree.MEMORY_MANIFEST_ARTIFACT)
            log_json(self.client, run_id, outcome.per_case, tree.PER_CASE_ARTIFACT)
        mlflow.end_run()
        if self.count_stages:
            self.client.set_tag(self.parent_run_id, tree.FINISHED_STAGES_TAG, str(outcome.stage.index + 1))
        self._stage_run = None
        faults.hit("stage_end")

    def _log_model(self, stage: StagePlan, run_id: str, model: torch.nn.Module) -> float:
        """Log the stage's MLflow model; returns the seconds it took."""
        from mscl.predict.settings import SegmenterSettings
        from mscl.tracking.models import log_stage_model

        started = time.perf_counter()
        seen = [] if stage.fresh else self._seen
        self._seen = [*seen, *(c for c in stage.train_centers if c not in seen)]
        settings = SegmenterSettings.of_stage(self.cfg, self.datasets, self._seen, run_id, stage.index + 1)
        log_stage_model(self.client, run_id, model, settings)
        return time.perf_counter() - started


def stage_tags(cfg: ExperimentConfig, seed: int, stage: StagePlan) -> dict[str, str]:
    """The tags that place a stage run: its study's strategy and seed (so stage runs can be filtered and
    compared by strategy), its position and its data."""
    return {
        tree.STRATEGY_TAG: cfg.strategy.name,
        tree.SEED_TAG: str(seed),
        tree.STAGE_TAG: str(stage.index + 1),
        tree.CENTER_TAG: stage.center,
        tree.TRAIN_CENTERS_TAG: ",".join(stage.train_centers),
    }


def stage_params(
    cfg: ExperimentConfig, seed: int, stage: StagePlan, manifest: DatasetManifest
) -> dict[str, str]:
    """The params of a stage run: what varies from stage to stage (:data:`~mscl.tracking.tree.STAGE_PARAMS`),
    the seed, and the strategy's own options under the parent's keys (``strategy.<option>``)."""
    cases = sum(len(manifest.cases_of(center, "train")) for center in stage.train_centers)
    options = {k: v for k, v in cfg.flat().items() if k.startswith(tree.STRATEGY_PARAM_PREFIX)}
    return {
        tree.STAGE_PARAM: str(stage.index + 1),
        tree.CENTER_PARAM: stage.center,
        tree.TRAIN_CENTERS_PARAM: ",".join(stage.train_centers),
        tree.TRAIN_CASES_PARAM: str(cases),
        tree.EPOCHS_PARAM: str(stage_epochs(cfg)),
        tree.FRESH_PARAM: str(stage.fresh),
        tree.SEED_PARAM: str(seed),
        **options,
    }


def log_missing(client: MlflowClient, run: Run, tags: dict[str, str], params: dict[str, str]) -> None:
    """Log, in one batch, the ``tags`` and ``params`` that ``run`` does not have yet (a logged param keeps
    its value: MLflow params are immutable)."""
    new_tags = [RunTag(k, v) for k, v in tags.items() if k not in run.data.tags]
    new_params = [Param(k, v[: tree.MAX_PARAM_CHARS]) for k, v in params.items() if k not in run.data.params]
    if new_tags or new_params:
        client.log_batch(run.info.run_id, params=new_params, tags=new_tags)
