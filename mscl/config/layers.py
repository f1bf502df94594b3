"""Resolving a configuration: shipped presets, YAML files and CLI overrides merged in layers, then validated.

Resolution order (later wins): preset YAML shipped in ``mscl/presets`` -> user YAML file -> ``--set``
overrides and dedicated CLI flags. The merged mapping is validated once into :class:`ExperimentConfig`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from mscl.config.problems import config_problems
from mscl.config.sections import SECTIONS, ExperimentConfig
from mscl.data.synthetic.profiles import shipped_centers_layer
from mscl.errors import ConfigError

PRESETS: tuple[str, ...] = ("tiny", "quick", "paper")
DEFAULT_PRESET = "quick"


def preset_mapping(name: str) -> dict[str, Any]:
    """The raw mapping of a shipped preset, over the shipped center profiles (``presets/centers.yaml``)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    text = resources.files("mscl.presets").joinpath(f"{name}.yaml").read_text(encoding="utf-8")
    return deep_merge(shipped_centers_layer(), yaml.safe_load(text) or {})


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping, failing with one clear line."""
    try:
        loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}:{where} invalid YAML") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: a config file must be a mapping of sections, not {type(loaded).__name__}")
    return loaded


def deep_merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``update`` into a copy of ``base``; nested mappings merge, everything else replaces."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def parse_override(text: str) -> dict[str, Any]:
    """Turn ``train.epochs=3`` into ``{"train": {"epochs": 3}}`` (the value is parsed as YAML).

    Raises:
        ConfigError: no ``=``, an empty key part, or a value that is not valid YAML.
    """
    key, sep, raw = text.partition("=")
    parts = key.strip().split(".")
    if not sep or not all(part.strip() for part in parts):
        raise ConfigError(f"override {text!r}: expected section.key=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise ConfigError(f"override {text!r}: the value is not valid YAML ({problem})") from None
    tree: dict[str, Any] = {}
    node = tree
    for part in parts[:-1]:
        node = node.setdefault(part.strip(), {})
    node[parts[-1].strip()] = value
    return tree


Override = str | Mapping[str, Any]
"""A ``section.key=value`` string (``--set``) or a nested mapping (CLI flags, API callers)."""


def check_sections(layer: Mapping[str, Any], source: str) -> None:
    """Refuse a layer that replaces a section (``train``, ``memory``, ...) with anything but a mapping.

    Checked on every layer before it is merged: a scalar section merged first and a mapping merged over it
    later (``--set train=3`` followed by ``--epochs 2``) would otherwise silently bring the defaults back.

    Raises:
        ConfigError: ``<source>: train: must be a mapping of settings, not int``.
    """
    for key, value in layer.items():
        if key in SECTIONS and not isinstance(value, Mapping):
            kind = "null" if value is None else type(value).__name__
            raise ConfigError(f"{source}: {key}: must be a mapping of settings, not {kind}")


def merge_layers(base: Mapping[str, Any], layers: Iterable[tuple[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """``base`` with every ``(source, mapping)`` layer merged over it in order, each checked first."""
    merged = dict(base)
    for source, layer in layers:
        check_sections(layer, source)
        merged = deep_merge(merged, layer)
    return merged


def override_layers(overrides: Iterable[Override]) -> list[tuple[str, Mapping[str, Any]]]:
    """``(source, mapping)`` layers of ``--set`` strings and override mappings, in order."""
    return [
        (f"override {o!r}", parse_override(o)) if isinstance(o, str) else ("override", o) for o in overrides
    ]


def load_config(
    preset: str | None = None,
    config_file: Path | None = None,
    overrides: Iterable[Override] = (),
    *,
    base: ExperimentConfig | None = None,
    foreign: Collection[str] = (),
) -> ExperimentConfig:
    """Resolve preset, file and overrides into one validated :class:`ExperimentConfig`.

    The one resolution path of every command (``config show``, ``prepare``, ``train``, ``train --resume``,
    ``bench``): the same layers, the same section checks, the same validation.

    Args:
        preset: Name of a shipped preset; defaults to the file's ``preset`` key, then ``quick``.
        config_file: Optional YAML file with any subset of the sections.
        overrides: ``section.key=value`` strings or nested mappings, applied in order.
        base: A configuration to apply the file and overrides to instead of a preset (the logged one of a
            resumed run), unless ``preset`` names a different preset.
        foreign: Top-level keys of the file that belong to the calling command, not to the experiment
            (``study`` for ``mscl study``): left out here.

    Raises:
        ConfigError: naming every invalid field as ``section.key: problem``.
    """
    user = read_yaml(config_file) if config_file is not None else {}
    user = {key: value for key, value in user.items() if key not in foreign}
    if base is not None and preset in (None, base.preset):
        name, start, source = base.preset, base.model_dump(mode="json"), "resume settings"
    else:
        name = preset or user.get("preset") or DEFAULT_PRESET
        start, source = preset_mapping(name), str(config_file) if config_file else f"preset {name}"
    merged = merge_layers(start, [(str(config_file), user), *override_layers(overrides)])
    merged["preset"] = name
    return validate_mapping(merged, source=source)


def validate_mapping(mapping: Mapping[str, Any], source: str = "config") -> ExperimentConfig:
    """Validate a merged mapping, raising :class:`ConfigError` listing every problem."""
    check_sections(mapping, source)
    try:
        return ExperimentConfig.model_validate(mapping)
    except ValidationError as exc:
        problems = config_problems(exc)
        raise ConfigError(f"{source}: " + "; ".join(problems)) from None
