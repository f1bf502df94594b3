"""Multi-domain (joint) training: all centers' training splits pooled into one stage (experiment D).

The test sets are exactly the per-center test splits of the dataset, so nothing leaks into training.
"""

from collections.abc import Sequence

from mscl.strategies.base import StagePlan, Strategy


class Joint(Strategy):
    """One fresh stage on the union of every center's training split."""

    name = "joint"
    kind = "joint"

    def plan(self, order: Sequence[str]) -> list[StagePlan]:
        return [StagePlan(0, "joint", tuple(order), fresh=True)]
