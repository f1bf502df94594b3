"""The metric contract of :mod:`mscl.testing.metrics`, over every registered metric."""

from mscl.testing.metrics import *  # noqa: F403
