"""The strategy contract of :mod:`mscl.testing.strategies`, over every registered strategy."""

from mscl.testing.strategies import *  # noqa: F403
