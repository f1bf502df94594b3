"""Sequential fine-tuning: train on each center in turn, carrying the weights on."""

from mscl.strategies.base import Strategy


class Finetune(Strategy):
    """Experiment B of the study: the base sequential behaviour, nothing added."""

    name = "finetune"
