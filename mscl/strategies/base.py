"""The strategy contract: which stages run, what each trains on, and what a strategy adds to training.

One stage loop (:mod:`mscl.protocol.loop`) serves every strategy. A strategy never trains or evaluates; the
loop calls its typed hooks; by default each only forwards to the strategy's regularisation terms
(:mod:`mscl.strategies.regularisers`, none unless its settings switch one on):

===================  =========================================================================================
``plan``             the stages, their centers and whether each starts from fresh weights
``extra_cases``      cases trained on besides the stage's own (replay's memory)
``before_stage``     a stage is about to train, the model in hand (keep a frozen copy, move state to device)
``loss_term``        a term added to the segmentation loss at every step, from the model, the batch and the
                     prediction; runs on the training device inside autocast and must not synchronise the host
``after_stage``      a stage trained and was scored, the model in hand (estimate a Fisher matrix, fill a
                     memory); may return a manifest logged with the stage
``restore_stage``    resume: a finished stage is skipped; rebuild what ``after_stage`` left outside the state
``adopt_stages``     extend: a finished study goes on; take over what ``after_stage`` left outside the state
                     from where it was written (the earlier centers' training data is not read again)
``state_dict``       what the strategy carries from stage to stage; saved with every stage checkpoint and
``load_state_dict``  mid-stage resume point and restored on ``--resume``, so a resumed study gives the same R
===================  =========================================================================================

On resume the state is loaded before ``before_stage`` of the stage that continues, so ``before_stage`` is
where a strategy moves its state to the training device. State holds tensors (on any device: saved on the
CPU), numbers, strings, lists and dicts of them: what ``torch.load(weights_only=True)`` reads back.

A strategy is registered under the entry-point group ``mscl.strategies`` and may declare its own config
section: a subclass of :class:`mscl.config.StrategyOptions` as ``options``, read back as ``self.settings``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from mscl.config import ExperimentConfig, StrategyOptions
from mscl.errors import ConfigError
from mscl.protocol.kinds import RMatrixKind
from mscl.tracking.tree import stage_run_name

if TYPE_CHECKING:
    import torch
    from torch import nn

    from mscl.config import TrainConfig
    from mscl.data.manifest import CaseRecord
    from mscl.strategies.regularisers import Regulariser


@dataclass(frozen=True)
class StagePlan:
    """One training stage.

    Attributes:
        index: 0-based position in the study.
        center: the center this stage adds (its R row label); ``joint`` for the pooled stage.
        train_centers: centers whose training split this stage trains on.
        fresh: start from a newly initialised model instead of the previous stage's weights.
    """

    index: int
    center: str
    train_centers: tuple[str, ...]
    fresh: bool

    @property
    def name(self) -> str:
        """MLflow run name of the stage, e.g. ``stage1-BWH`` (1-based)."""
        return stage_run_name(self.index, self.center)


@dataclass
class ExtraCase:
    """A training case: the dataset's own (``meta`` from its record) or one a strategy adds (replay)."""

    key: str
    image: np.ndarray
    label: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StageContext:
    """What the stage hooks see.

    Attributes:
        stage: the stage.
        model: the network; in ``before_stage`` the weights the stage starts from, in ``after_stage`` the
            trained weights that were scored and are carried on.
        train_cases: the training-split cases of the stage's own centers (not the extra cases).
        device: the training device.
        train: the training settings (patch size, precision, ...).
        seed: the stage's seed, for anything random a hook draws.
    """

    stage: StagePlan
    model: nn.Module
    train_cases: Sequence[ExtraCase]
    device: torch.device
    train: TrainConfig
    seed: int


class Strategy:
    """Base strategy: sequential stages over ``order``, carrying the weights on (sequential fine-tuning)."""

    name: ClassVar[str]
    kind: ClassVar[RMatrixKind] = "continual"
    options: ClassVar[type[StrategyOptions]] = StrategyOptions
    """The model of this strategy's ``strategy:`` config section."""
    terms: list[Regulariser]
    """The regularisation terms its settings switch on (``ewc``, ``mas``, ``lwf`` sub-sections, see
    :mod:`mscl.strategies.regularisers`); the stage hooks, the loss and the state forward to them."""

    def __init__(self, cfg: ExperimentConfig, seed: int) -> None:
        from mscl.strategies.regularisers import terms_of

        self.cfg, self.seed = cfg, seed
        self.terms: list[Regulariser] = terms_of(cfg.strategy)

    @property
    def settings(self) -> StrategyOptions:
        """This strategy's validated ``strategy:`` section (an instance of ``options``)."""
        return self.cfg.strategy

    def plan(self, order: Sequence[str]) -> list[StagePlan]:
        """The stages in training order."""
        return [StagePlan(i, center, (center,), fresh=i == 0) for i, center in enumerate(order)]

    def extra_cases(self, stage: StagePlan) -> list[ExtraCase]:
        """Cases trained on besides the stage's own centers (none by default)."""
        return []

    def before_stage(self, context: StageContext) -> None:
        """A stage is about to train: also one resumed mid-way, after its state and before its resume
        point's weights are loaded (``context.model`` holds the weights the stage started from)."""
        for term in self.terms:
            term.before_stage(context)

    def loss_term(
        self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, prediction: torch.Tensor
    ) -> torch.Tensor | None:
        """A scalar added to the segmentation loss of a step (the terms' sum), or None for nothing."""
        values = [v for term in self.terms if (v := term.loss_term(model, images, prediction)) is not None]
        return sum(values[1:], values[0]) if values else None

    def after_stage(self, context: StageContext) -> dict[str, Any] | None:
        """A stage trained and was scored; returns a manifest to log with the stage, if any."""
        for term in self.terms:
            term.after_stage(context)
        return None

    def restore_stage(self, stage: StagePlan, train_cases: Sequence[ExtraCase]) -> None:
        """Resume skips the finished ``stage``: rebuild what ``after_stage`` kept outside ``state_dict``.

        :meth:`load_state_dict` is called afterwards with the state saved after the last finished stage.
        """

    def adopt_stages(
        self,
        stages: Sequence[StagePlan],
        train_cases: Sequence[CaseRecord],
        manifest: Mapping[str, Any] | None,
    ) -> None:
        """``mscl extend``: the finished ``stages`` of a logged study go on without their training data.

        Called once, after :meth:`load_state_dict` with the last stage's state, before the new stages.
        ``train_cases`` are the stages' training cases as the study's ``dataset.json`` lists them (no
        arrays), ``manifest`` the last stage's logged memory manifest (None if it logged none). Nothing to do
        when the state is complete; a strategy that rebuilds state from the earlier data on resume
        (:meth:`restore_stage`) must take it over here instead, or it cannot be extended.

        Raises:
            ConfigError: what the strategy needs is gone (naming it and what to do).
        """
        if type(self).restore_stage is not Strategy.restore_stage:
            raise ConfigError(
                f"strategy {self.name} rebuilds its state from the earlier centers' training data "
                "(restore_stage) and cannot take it over from what the study wrote (adopt_stages): "
                "it cannot be extended"
            )

    def state_dict(self) -> dict[str, Any]:
        """State carried between stages (see the module docstring): its terms' states by name."""
        return {term.name: term.state_dict() for term in self.terms}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned.

        Raises:
            ValueError: a state whose keys are not this strategy's terms (another configuration's state).
        """
        names = {term.name for term in self.terms}
        if set(state) != names and state:
            raise ValueError(
                f"strategy {self.name!r} keeps the state of {sorted(names)}, got {sorted(state)}"
            )
        for term in self.terms:
            term.load_state_dict(state.get(term.name, {}))

    def close(self) -> None:
        """Release resources (memory stores)."""


def state_nbytes(state: Any) -> int:
    """Bytes of the tensors inside a (nested) strategy state."""
    import torch

    if isinstance(state, torch.Tensor):
        return state.numel() * state.element_size()
    if isinstance(state, dict):
        return sum(state_nbytes(v) for v in state.values())
    if isinstance(state, list | tuple):
        return sum(state_nbytes(v) for v in state)
    return 0
