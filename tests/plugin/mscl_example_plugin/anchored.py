"""``anchored_replay``: experience replay plus an L2 pull towards the weights the stage started from.

The loss of a stage ``k > 1`` adds ``weight * sum_i (theta_i - theta*_i)^2`` over the trainable
parameters, ``theta*`` being the weights after stage ``k - 1`` (the L2 baseline of Kirkpatrick et al. 2017,
EWC with an identity Fisher). The anchor is the strategy's state: saved with every checkpoint, restored on
resume. Replay's memory comes from subclassing mscl's ``Replay``: no copy of its code.
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import Field
from torch import nn

from mscl.strategies.base import StageContext
from mscl.strategies.replay import Replay, ReplayOptions


class AnchoredOptions(ReplayOptions):
    """The ``strategy:`` section of ``anchored_replay``: replay's (EWC, MAS, LwF terms too) and ``weight``."""

    weight: float = Field(0.01, ge=0, description="Weight of the L2 pull towards the previous weights.")


class AnchoredReplay(Replay):
    """Replay whose every stage after the first is pulled towards the previous stage's weights."""

    name = "anchored_replay"
    options = AnchoredOptions

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.anchor: dict[str, torch.Tensor] = {}

    def before_stage(self, context: StageContext) -> None:
        """Keep the anchor on the training device (it may come back from a checkpoint on the CPU)."""
        super().before_stage(context)
        self.anchor = {name: value.to(context.device) for name, value in self.anchor.items()}

    def loss_term(
        self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, prediction: torch.Tensor
    ) -> torch.Tensor | None:
        """Replay's terms (if any) plus the pull towards the anchor."""
        inherited = super().loss_term(model, images, labels, prediction)
        if not self.anchor:
            return inherited
        weight = self.settings.weight  # type: ignore[attr-defined]
        pulls = [((p - self.anchor[n]) ** 2).sum() for n, p in model.named_parameters() if n in self.anchor]
        pull = weight * torch.stack(pulls).sum()
        return pull if inherited is None else inherited + pull

    def after_stage(self, context: StageContext) -> dict[str, Any]:
        """Fill the memory (replay), then anchor the next stage at the weights just trained."""
        manifest = super().after_stage(context)
        self.anchor = {n: p.detach().clone() for n, p in context.model.named_parameters() if p.requires_grad}
        return manifest

    def state_dict(self) -> dict[str, Any]:
        return {"replay": super().state_dict(), "anchor": {n: v.cpu() for n, v in self.anchor.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state.get("replay", {}))
        self.anchor = dict(state.get("anchor", {}))
