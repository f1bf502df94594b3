"""Continual-learning strategies: what data a stage sees and what it carries over."""

from __future__ import annotations

from mscl.config import ExperimentConfig
from mscl.strategies.base import StagePlan, Strategy
from mscl.strategies.cumulative import Cumulative
from mscl.strategies.finetune import Finetune
from mscl.strategies.joint import Joint
from mscl.strategies.replay import Replay
from mscl.strategies.single import Single

STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls for cls in (Single, Finetune, Replay, Joint, Cumulative)
}


def build_strategy(cfg: ExperimentConfig, seed: int) -> Strategy:
    """The strategy named by ``cfg.strategy.name``, set up for one seed."""
    return STRATEGIES[cfg.strategy.name](cfg, seed)


__all__ = ["STRATEGIES", "StagePlan", "Strategy", "build_strategy"]
