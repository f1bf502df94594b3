"""Regularisation terms a strategy carries: EWC, MAS and LwF, each with its settings, state and loss term.

A term is not a strategy: ``ewc``, ``mas`` and ``lwf`` are fine-tuning carrying one term, and ``replay`` may
carry any of them (``strategy.ewc``, ``strategy.mas``, ``strategy.lwf``), with no copy of either's code. The
base :class:`~mscl.strategies.base.Strategy` forwards its stage hooks, loss and state to its terms.

With ``theta`` the trainable parameters, ``theta*`` their values after the previous stage and ``L`` the
stage's soft Dice loss:

- **EWC**, online (Kirkpatrick et al. 2017, PNAS 114(13); online form: Schwarz et al. 2018, "Progress &
  Compress", ICML): after each stage, the diagonal empirical Fisher ``F_new = E[(dL/dtheta)^2]`` over
  ``fisher_patches`` training patches of the stage's own centers, ``F <- gamma F + F_new``; the loss of the
  next stages adds ``lambda / 2 * sum_i F_i (theta_i - theta*_i)^2``.
- **MAS** (Aljundi et al. 2018, "Memory Aware Synapses", ECCV): importance ``Omega_new = E[|d ||f(x)||^2 /
  dtheta|]``, the gradient of the squared L2 norm of the soft output over ``patches`` training patches (no
  labels needed), ``Omega <- Omega + Omega_new``; the loss adds ``lambda * sum_i Omega_i (theta_i -
  theta*_i)^2``.
- **LwF** (Li & Hoiem 2017, TPAMI 40(12)) for a soft-label head: a frozen copy of the previous stage's
  model; the loss adds ``weight * SoftDice(f(x), f_prev(x))`` on the same patches, the previous model's
  soft output taken as a soft label. The head already emits probabilities in ``[0, 1]`` (normalised ReLU or
  sigmoid), so there are no logits to soften and no temperature.

Gradients of EWC and MAS are taken per batch of ``train.cases_per_step x train.patches_per_case`` patches
(as Avalanche does), not per sample. Importances and the teacher are the terms' state: saved with every
stage checkpoint and restored on resume, never recomputed from data that may be gone.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from pydantic import ConfigDict, Field
from torch import nn

from mscl.engine.device import autocast_context
from mscl.engine.loss import soft_dice_loss
from mscl.schema import StrictModel

if TYPE_CHECKING:
    from mscl.strategies.base import StageContext

Tensors = dict[str, torch.Tensor]


class EwcSettings(StrictModel):
    """Online EWC: the penalty weight ``lambda``, the Fisher's patches and its decay."""

    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True, serialize_by_alias=True)

    lambda_: float = Field(1000.0, alias="lambda", ge=0, description="Weight of the EWC penalty.")
    fisher_patches: int = Field(64, ge=1, description="Training patches the Fisher is estimated on.")
    gamma: float = Field(1.0, ge=0, le=1, description="Decay of the earlier stages' Fisher (online EWC).")


class MasSettings(StrictModel):
    """MAS: the penalty weight ``lambda`` and the importance's patches."""

    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True, serialize_by_alias=True)

    lambda_: float = Field(1.0, alias="lambda", ge=0, description="Weight of the MAS penalty.")
    patches: int = Field(64, ge=1, description="Training patches the importance is estimated on.")


class LwfSettings(StrictModel):
    """LwF: the weight of the distillation term."""

    weight: float = Field(1.0, ge=0, description="Weight of the soft-Dice distillation term.")


class Regulariser(ABC):
    """A term added to a strategy: stage hooks, a loss term and a state (see the module docstring)."""

    name: ClassVar[str]

    @abstractmethod
    def before_stage(self, context: StageContext) -> None:
        """Prepare the stage: the state onto the training device (it may come back from a checkpoint on
        the CPU), a teacher built."""

    @abstractmethod
    def loss_term(
        self, model: nn.Module, images: torch.Tensor, prediction: torch.Tensor
    ) -> torch.Tensor | None:
        """The term of one step, or None before the first stage has ended."""

    @abstractmethod
    def after_stage(self, context: StageContext) -> None:
        """Update the state from the trained model."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """The state, on the CPU."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""


class _Penalty(Regulariser):
    """``scale * sum_i importance_i (theta_i - anchor_i)^2`` with importance estimated after every stage."""

    def __init__(self, scale: float, patches: int) -> None:
        self.scale, self.patches = scale, patches
        self.importance: Tensors = {}
        self.anchor: Tensors = {}

    @abstractmethod
    def estimate(self, context: StageContext) -> Tensors:
        """This stage's importance of every trainable parameter."""

    @abstractmethod
    def accumulate(self, old: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
        """The importance carried on from the earlier stages' ``old`` and this stage's ``new``."""

    def before_stage(self, context: StageContext) -> None:
        self.importance = _to(self.importance, context.device)
        self.anchor = _to(self.anchor, context.device)

    def loss_term(
        self, model: nn.Module, images: torch.Tensor, prediction: torch.Tensor
    ) -> torch.Tensor | None:
        if not self.anchor:
            return None
        terms = [
            (self.importance[n] * (p - self.anchor[n]) ** 2).sum()
            for n, p in model.named_parameters()
            if n in self.anchor
        ]
        return self.scale * torch.stack(terms).sum()

    def after_stage(self, context: StageContext) -> None:
        new = self.estimate(context)
        self.importance = {
            n: self.accumulate(self.importance[n], v) if n in self.importance else v for n, v in new.items()
        }
        self.anchor = {n: p.detach().clone() for n, p in _trainable(context.model)}

    def state_dict(self) -> dict[str, Any]:
        return {"importance": _to(self.importance, "cpu"), "anchor": _to(self.anchor, "cpu")}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.importance = dict(state.get("importance", {}))
        self.anchor = dict(state.get("anchor", {}))


class EwcTerm(_Penalty):
    """Online elastic weight consolidation (see the module docstring)."""

    name = "ewc"

    def __init__(self, settings: EwcSettings) -> None:
        super().__init__(settings.lambda_ / 2, settings.fisher_patches)
        self.gamma = settings.gamma

    def estimate(self, context: StageContext) -> Tensors:
        def task_loss(prediction: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            return soft_dice_loss(prediction, labels)

        return gradient_moments(context, self.patches, task_loss, torch.square)

    def accumulate(self, old: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
        return self.gamma * old + new


class MasTerm(_Penalty):
    """Memory-aware synapses (see the module docstring)."""

    name = "mas"

    def __init__(self, settings: MasSettings) -> None:
        super().__init__(settings.lambda_, settings.patches)

    def estimate(self, context: StageContext) -> Tensors:
        def output_norm(prediction: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            return prediction.float().pow(2).flatten(1).sum(1).mean()

        return gradient_moments(context, self.patches, output_norm, torch.abs)

    def accumulate(self, old: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
        return old + new


class LwfTerm(Regulariser):
    """Learning without forgetting with a frozen copy of the previous stage's model (module docstring)."""

    name = "lwf"

    def __init__(self, settings: LwfSettings) -> None:
        self.weight = settings.weight
        self.teacher_weights: Tensors = {}
        self.teacher: nn.Module | None = None

    def before_stage(self, context: StageContext) -> None:
        """Build the frozen teacher from the previous stage's weights (none before the first stage)."""
        if not self.teacher_weights:
            self.teacher = None
            return
        teacher = copy.deepcopy(context.model)
        teacher.load_state_dict(self.teacher_weights)
        self.teacher = teacher.to(context.device).eval().requires_grad_(False)

    def loss_term(
        self, model: nn.Module, images: torch.Tensor, prediction: torch.Tensor
    ) -> torch.Tensor | None:
        if self.teacher is None:
            return None
        with torch.no_grad():
            target = self.teacher(images)
        return self.weight * soft_dice_loss(prediction, target)

    def after_stage(self, context: StageContext) -> None:
        """The trained weights become the next stage's teacher."""
        self.teacher_weights = {k: v.detach().clone() for k, v in context.model.state_dict().items()}

    def state_dict(self) -> dict[str, Any]:
        return {"teacher": _to(self.teacher_weights, "cpu")}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.teacher_weights = dict(state.get("teacher", {}))


Objective = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``(prediction, labels) -> scalar`` whose gradient measures a parameter's importance."""


def gradient_moments(
    context: StageContext, patches: int, objective: Objective, moment: Callable[[torch.Tensor], torch.Tensor]
) -> Tensors:
    """``E[moment(d objective / d theta)]`` over batches of ``patches`` training patches of the stage's own
    cases, for every trainable parameter (the model's mode and gradients are left as they were).

    Patches are sampled as in training (lesion-weighted, no augmentation) with a generator seeded by the
    stage's seed, so the estimate is deterministic on CPU.
    """
    from mscl.engine.cache import CaseCache
    from mscl.engine.sampling import sample_patches

    train, model = context.train, context.model
    cache = CaseCache.from_arrays(
        [c.image for c in context.train_cases],
        [c.label for c in context.train_cases],
        device=context.device,
        min_shape=train.patch_size,
        case_ids=[c.key for c in context.train_cases],
    )
    generator = torch.Generator(device=context.device).manual_seed(context.seed)
    batch = train.cases_per_step * train.patches_per_case
    sums = {n: torch.zeros_like(p) for n, p in _trainable(model)}
    was_training = model.training
    model.eval()
    try:
        for size in _batches(patches, batch):
            cases = torch.randint(len(cache), (size,), generator=generator, device=context.device)
            images, labels = sample_patches(
                cache, cases, train.patch_size, train.lesion_fraction, generator, flips=False, rotations=False
            )
            model.zero_grad(set_to_none=True)
            with autocast_context(context.device, train.precision):
                value = objective(model(images), labels)
            value.backward()
            for n, p in _trainable(model):
                if p.grad is not None:
                    sums[n] += moment(p.grad) * (size / patches)
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return sums


def _batches(total: int, size: int) -> Iterator[int]:
    while total > 0:
        yield min(size, total)
        total -= size


def _trainable(model: nn.Module) -> Iterator[tuple[str, nn.Parameter]]:
    return ((n, p) for n, p in model.named_parameters() if p.requires_grad)


def _to(tensors: Tensors, device: torch.device | str) -> Tensors:
    return {name: value.to(device) for name, value in tensors.items()}


TERMS: dict[str, Callable[[Any], Regulariser]] = {"ewc": EwcTerm, "mas": MasTerm, "lwf": LwfTerm}
"""A term by the name of its ``strategy:`` sub-section."""


def terms_of(settings: object) -> list[Regulariser]:
    """The terms a strategy's settings switch on: every ``ewc``, ``mas``, ``lwf`` section that is set."""
    return [TERMS[name](value) for name in TERMS if (value := getattr(settings, name, None)) is not None]
