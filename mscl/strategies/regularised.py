"""``ewc``, ``mas`` and ``lwf``: sequential fine-tuning carrying one regularisation term.

The term, its formula and its reference live in :mod:`mscl.strategies.regularisers`; its settings are the
strategy's ``strategy.ewc`` / ``strategy.mas`` / ``strategy.lwf`` sub-section (on by default here, optional
on ``replay``).
"""

from __future__ import annotations

from pydantic import Field

from mscl.config import StrategyOptions
from mscl.strategies.base import Strategy
from mscl.strategies.regularisers import EwcSettings, LwfSettings, MasSettings


class EwcOptions(StrategyOptions):
    """The ``strategy:`` section of ``ewc``."""

    ewc: EwcSettings = Field(default_factory=EwcSettings)


class MasOptions(StrategyOptions):
    """The ``strategy:`` section of ``mas``."""

    mas: MasSettings = Field(default_factory=MasSettings)


class LwfOptions(StrategyOptions):
    """The ``strategy:`` section of ``lwf``."""

    lwf: LwfSettings = Field(default_factory=LwfSettings)


class Ewc(Strategy):
    """Fine-tuning with online elastic weight consolidation."""

    name = "ewc"
    options = EwcOptions


class Mas(Strategy):
    """Fine-tuning with memory-aware synapses."""

    name = "mas"
    options = MasOptions


class Lwf(Strategy):
    """Fine-tuning with learning-without-forgetting distillation from the previous stage's model."""

    name = "lwf"
    options = LwfOptions
