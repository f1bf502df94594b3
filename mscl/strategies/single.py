"""Single-domain training: one model per center, each tested on every center (experiment A)."""

from collections.abc import Sequence

from mscl.strategies.base import StagePlan, Strategy


class Single(Strategy):
    """Each stage trains a fresh model on one center only; nothing is carried over."""

    name = "single"
    kind = "single"

    def plan(self, order: Sequence[str]) -> list[StagePlan]:
        return [StagePlan(i, c, (c,), fresh=True) for i, c in enumerate(order)]
