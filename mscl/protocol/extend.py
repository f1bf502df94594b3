"""The stage loop of ``mscl extend``: a finished study trains its new centers' stages, in the same loop.

The model starts from the last finished stage's weights (the strategy already holds that stage's state and
whatever it adopted, :meth:`~mscl.strategies.base.Strategy.adopt_stages`); the new stages run through
:class:`~mscl.protocol.loop.StageRunner` exactly like the study's own. Before training, the new centers are
scored by the untrained model (their baseline entries) and by the weights the extension starts from (their
entries in the study's last R row: the zero-shot score before the extension).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from mscl.config import ExperimentConfig
from mscl.data.dataset import PreparedDataset
from mscl.protocol.loop import StageCheckpoint, StageRunner, TestCases, stage_model
from mscl.protocol.observers import StudyObserver
from mscl.protocol.results import CaseScores, CenterScores, StageOutcome
from mscl.strategies.base import StagePlan, Strategy


@dataclass
class ExtensionResult:
    """What an extension produced.

    Attributes:
        untrained: the untrained model's scores on the new centers (their baseline entries).
        before: the starting weights' scores on the new centers (the last earlier row's new entries).
        before_per_case: the per-case scores behind ``before``.
        stages: the new stages' outcomes, in order.
    """

    untrained: CenterScores
    before: CenterScores
    before_per_case: CaseScores
    stages: list[StageOutcome] = field(default_factory=list)


def run_extension(
    data: PreparedDataset,
    tests: TestCases,
    cfg: ExperimentConfig,
    seed: int,
    strategy: Strategy,
    start: StageCheckpoint,
    stages: Sequence[StagePlan],
    observer: StudyObserver,
) -> ExtensionResult:
    """Train and score the new ``stages`` of an extended study, carrying on from ``start``'s weights.

    Args:
        data: the new centers' prepared dataset (their training split is all that is trained on, besides
            what the strategy adds).
        tests: every center's test cases, earlier and new (an earlier center not available: none).
        cfg: the study's configuration, with the changes the extension asked for.
        seed: the study's seed.
        strategy: built for ``cfg`` and ``seed``, its state loaded and its earlier stages adopted.
        start: the last finished stage's checkpoint (verified).
        stages: the new stages (indices after the study's), none ``fresh``.
        observer: receives the new stages' events.
    """
    from mscl.engine.device import configure_determinism, resolve_device, seed_everything
    from mscl.models.unet import build_model

    device = resolve_device(cfg.train.device)
    configure_determinism(cfg.train.deterministic, device)
    seed_everything(seed)
    new = [center for stage in stages for center in stage.train_centers]
    runner = StageRunner(data, tests, cfg, seed, device, strategy, observer)
    try:
        initial = build_model(cfg.model, seed=seed).to(device)
        untrained, _ = runner.score(initial, new)
        model = copy.deepcopy(initial)
        model.load_state_dict(start.weights)
        before, before_per_case = runner.score(model, new)
        result = ExtensionResult(untrained, before, before_per_case)
        for stage in stages:
            model = stage_model(stage, model, initial, cfg, seed)
            outcome = runner.run(stage, model, None)
            result.stages.append(outcome)
            observer.stage_finished(outcome, model)
    finally:
        strategy.close()
    return result


@dataclass(frozen=True)
class ExtensionNumbers:
    """What an extension did, in one metric's units.

    Attributes:
        before: each new center's score by the weights the extension started from (zero-shot).
        after: each new center's score after the extension's last stage.
        change: each earlier center's score after the extension minus before it (NaN where either is
            missing).
        bwt: the extension's own BWT: the mean change of the earlier centers, sign-aware (positive means
            better for every metric), NaN when none was scored.
    """

    before: dict[str, float]
    after: dict[str, float]
    change: dict[str, float]
    bwt: float


def extension_numbers(
    r: np.ndarray, order: Sequence[str], centers: Sequence[str], stages_before: int, higher_is_better: bool
) -> ExtensionNumbers:
    """The :class:`ExtensionNumbers` of an R matrix (rows ``order``, columns ``centers``) whose first
    ``stages_before`` stages were trained before the extension."""
    earlier = [c for c in centers if c in order[:stages_before]]
    start, end = r[stages_before - 1], r[-1]
    column = {center: j for j, center in enumerate(centers)}
    change = {c: float(end[column[c]] - start[column[c]]) for c in earlier}
    signed = [v if higher_is_better else -v for v in change.values() if not np.isnan(v)]
    new = order[stages_before:]
    return ExtensionNumbers(
        before={c: float(start[column[c]]) for c in new},
        after={c: float(end[column[c]]) for c in new},
        change=change,
        bwt=float(np.mean(signed)) if signed else float("nan"),
    )
