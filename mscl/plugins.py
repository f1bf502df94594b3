"""Named plugins found through entry-point groups: one lookup for strategies, metrics and memory backends.

A third-party package adds a plugin with no change to mscl, e.g.::

    [project.entry-points."mscl.strategies"]
    ewc = "my_package.ewc:Ewc"

The built-ins register the same way in mscl's own ``pyproject.toml``.
"""

from __future__ import annotations

import sys
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import Generic, TypeVar

from mscl.errors import MsclError

T = TypeVar("T")

STRATEGIES_GROUP = "mscl.strategies"
METRICS_GROUP = "mscl.metrics"
MEMORY_BACKENDS_GROUP = "mscl.memory_backends"


class Registry(Generic[T]):
    """The plugins of one entry-point group; ``T`` is what an entry point names (a class).

    Args:
        group: the entry-point group, e.g. ``mscl.metrics``.
        kind: what a plugin is, for messages (``metric``, ``strategy``, ``memory backend``).
        error: the error raised for an unknown or broken plugin.
    """

    def __init__(self, group: str, kind: str, error: type[MsclError]) -> None:
        self.group, self.kind, self.error = group, kind, error

    def _entry_points(self) -> dict[str, EntryPoint]:
        return _group_entry_points(self.group, tuple(sys.path))

    def names(self) -> list[str]:
        """Every registered name, sorted (the plugins are not imported)."""
        return sorted(self._entry_points())

    def check(self, name: str) -> str:
        """``name`` when it is registered.

        Raises:
            MsclError: the registry's error, listing the known names.
        """
        if name not in self._entry_points():
            raise self.error(self.unknown(name))
        return name

    def unknown(self, name: str) -> str:
        """The message for an unknown ``name``: every known one listed."""
        return f"unknown {self.kind} {name!r}; known: {', '.join(self.names()) or 'none'}"

    def get(self, name: str) -> T:
        """The class registered as ``name``.

        Raises:
            MsclError: the registry's error for an unknown name (listing the known ones) or a plugin that
                fails to import.
        """
        found = self._entry_points().get(name)
        if found is None:
            raise self.error(self.unknown(name))
        try:
            loaded: T = found.load()
        except (ImportError, AttributeError) as exc:
            raise self.error(f"{self.kind} {name!r} ({found.value}) cannot be loaded: {exc}") from None
        return loaded


@cache
def _group_entry_points(group: str, path: tuple[str, ...]) -> dict[str, EntryPoint]:
    """The entry points of ``group`` visible on ``path`` (``sys.path``): scanning every installed
    distribution costs ~15 ms and a study asks dozens of times; a plugin put on the path is seen at once."""
    del path  # the cache key: entry_points() reads the current sys.path
    return {ep.name: ep for ep in entry_points(group=group)}
