"""What the plugin's own repository runs: mscl's contract suites over every installed entry, its own too."""

from mscl.testing.memory_backends import *  # noqa: F403
from mscl.testing.metrics import *  # noqa: F403
from mscl.testing.strategies import *  # noqa: F403
