"""Install the example plugin the way pip would expose it to mscl: a ``.dist-info`` with its entry points.

The entry points are read from the plugin's own ``pyproject.toml``; the dist-info goes into a scratch
folder that, with the plugin's sources, is put on ``sys.path`` (and ``PYTHONPATH`` for subprocesses). No
pip, nothing written into the environment: the registration disappears with the test's monkeypatch.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest

PLUGIN_ROOT = Path(__file__).resolve().parent
"""Holds ``pyproject.toml`` and the ``mscl_example_plugin`` package."""


def write_dist_info(site: Path) -> dict[str, dict[str, str]]:
    """Write ``mscl_example_plugin-<version>.dist-info`` into ``site``; returns its entry points by group."""
    project = tomllib.loads((PLUGIN_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    info = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n", encoding="utf-8"
    )
    groups: dict[str, dict[str, str]] = project["entry-points"]
    lines = [line for group, entries in groups.items() for line in _section(group, entries)]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return groups


def _section(group: str, entries: dict[str, str]) -> list[str]:
    return [f"[{group}]", *(f"{name} = {target}" for name, target in entries.items()), ""]


def install(site: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, dict[str, str]]:
    """Make the plugin importable and registered in this process and in subprocesses it starts."""
    groups = write_dist_info(site)
    for folder in (PLUGIN_ROOT, site):
        monkeypatch.syspath_prepend(str(folder))
    paths = [str(PLUGIN_ROOT), str(site), *filter(None, [os.environ.get("PYTHONPATH")])]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(paths))
    return groups
