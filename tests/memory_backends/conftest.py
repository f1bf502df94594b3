"""Fixtures of the replay-memory tests: every registered backend, tiny seeded samples."""

from mscl.testing.memory_backends import (  # noqa: F401  (fixtures)
    OpenStore,
    backend_name,
    meta,
    open_store,
    persistent,
    sample,
    store_path,
)
