"""Cumulative training: stage k trains from scratch on centers 1..k (the fair upper bound per stage)."""

from collections.abc import Sequence

from mscl.strategies.base import StagePlan, Strategy


class Cumulative(Strategy):
    """Every stage starts fresh on the pooled training data of all centers seen so far."""

    name = "cumulative"
    kind = "cumulative"

    def plan(self, order: Sequence[str]) -> list[StagePlan]:
        return [StagePlan(i, c, tuple(order[: i + 1]), fresh=True) for i, c in enumerate(order)]
