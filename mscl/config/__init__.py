"""The experiment configuration: pydantic models, shipped presets, YAML files and CLI overrides.

:mod:`~mscl.config.sections` holds the models, :mod:`~mscl.config.layers` resolves presets, files and
overrides into one validated :class:`ExperimentConfig`, :mod:`~mscl.config.problems` words validation errors.
The names below are the package's public interface (``from mscl.config import load_config``).
"""

from mscl.config.layers import (
    DEFAULT_PRESET,
    PRESETS,
    Override,
    check_sections,
    deep_merge,
    load_config,
    merge_layers,
    override_layers,
    parse_override,
    preset_mapping,
    read_yaml,
    validate_mapping,
)
from mscl.config.problems import config_problems
from mscl.config.sections import (
    DEFAULT_METRICS,
    NOT_PARAMS,
    SECTIONS,
    DataConfig,
    EvalConfig,
    ExperimentConfig,
    IntTriple,
    MemoryConfig,
    ModelConfig,
    Normalization,
    ProtocolConfig,
    Selection,
    StrategyOptions,
    TrackingConfig,
    TrainConfig,
    Triple,
    flatten_config,
)

__all__ = [
    "DEFAULT_METRICS",
    "DEFAULT_PRESET",
    "NOT_PARAMS",
    "PRESETS",
    "SECTIONS",
    "DataConfig",
    "EvalConfig",
    "ExperimentConfig",
    "IntTriple",
    "MemoryConfig",
    "ModelConfig",
    "Normalization",
    "Override",
    "ProtocolConfig",
    "Selection",
    "StrategyOptions",
    "TrackingConfig",
    "TrainConfig",
    "Triple",
    "check_sections",
    "config_problems",
    "deep_merge",
    "flatten_config",
    "load_config",
    "merge_layers",
    "override_layers",
    "parse_override",
    "preset_mapping",
    "read_yaml",
    "validate_mapping",
]
