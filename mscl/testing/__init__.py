"""Contract test suites for plugins: every registered strategy, metric and memory backend must pass them.

mscl runs them over its own entries; a plugin's repository runs the same suites over everything installed
(its entries included) by star-importing them into one of its pytest modules::

    # tests/test_mscl_contracts.py of a plugin
    from mscl.testing.memory_backends import *  # noqa: F403
    from mscl.testing.metrics import *  # noqa: F403
    from mscl.testing.strategies import *  # noqa: F403

Each suite parametrizes its fixtures over the names of its entry-point group, so a newly installed plugin
is picked up with no change. The suites need pytest (mscl's ``dev`` extra).
"""
