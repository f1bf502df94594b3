"""Continual-learning strategies, registered under the entry-point group ``mscl.strategies``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mscl.errors import ConfigError
from mscl.plugins import STRATEGIES_GROUP, Registry

if TYPE_CHECKING:
    from mscl.config import ExperimentConfig
    from mscl.strategies.base import Strategy

STRATEGIES: Registry[type[Strategy]] = Registry(STRATEGIES_GROUP, "strategy", ConfigError)


def build_strategy(cfg: ExperimentConfig, seed: int) -> Strategy:
    """The strategy named by ``cfg.strategy.name``, set up for one seed."""
    return STRATEGIES.get(cfg.strategy.name)(cfg, seed)
