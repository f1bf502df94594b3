"""The memory-backend contract of :mod:`mscl.testing.memory_backends`, over every registered backend."""

from mscl.testing.memory_backends import *  # noqa: F403
