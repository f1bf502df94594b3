"""The sections of an experiment configuration as pydantic models, whole in :class:`ExperimentConfig`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    Field,
    SerializeAsAny,
    ValidationError,
    field_validator,
    model_validator,
)

from mscl.config.problems import config_problems
from mscl.data.synthetic.profiles import SyntheticConfig
from mscl.errors import ConfigError
from mscl.plugins import MEMORY_BACKENDS_GROUP, METRICS_GROUP, Registry
from mscl.schema import StrictModel

Triple = tuple[float, float, float]
IntTriple = tuple[int, int, int]
DEFAULT_METRICS = ("dice", "lesion_tpr", "lesion_fdr", "lesion_f1", "ndsc", "volume_diff_ml")
"""What evaluation scores unless ``eval.metrics`` says otherwise: Dice, then what MS-lesion papers report."""
Normalization = Literal["zscore", "percentile"]
"""Intensity normalisations of :func:`mscl.data.standardize.normalize_intensity`."""


class DataConfig(StrictModel):
    """How raw images become a prepared dataset directory (stage contract 1)."""

    spacing: Triple = Field((1.0, 1.0, 1.0), description="Target voxel spacing in mm.")
    crop_margin_mm: float = Field(5.0, ge=0, description="Margin around the brain bounding box.")
    normalization: Normalization = "zscore"
    test_fraction: float = Field(0.2, gt=0, lt=1)
    split_seed: int = Field(0, ge=0)
    format: Literal["zarr", "hdf5"] = "zarr"
    workers: int = Field(1, ge=1)
    labels_dir: str = Field("labels", description="BIDS derivatives folder holding lesion masks.")
    label_suffix: str = Field("_mask", description="Suffix after the image stem in a mask file name.")
    center_column: str = Field("site", description="participants.tsv column naming the center.")
    label_tolerance: float = Field(1e-3, ge=0, lt=0.5, description="Allowed excursion outside [0, 1].")

    @field_validator("spacing")
    @classmethod
    def _positive_spacing(cls, value: Triple) -> Triple:
        if any(s <= 0 for s in value):
            raise ValueError("every spacing must be > 0")
        return value


class ModelConfig(StrictModel):
    """The residual 3D UNet (MONAI) and its output head."""

    channels: tuple[int, ...] = Field((32, 64, 128, 256), min_length=2)
    num_res_units: int = Field(2, ge=0)
    norm: Literal["instance", "batch"] = "instance"
    dropout: float = Field(0.0, ge=0, lt=1)
    activation: Literal["normrelu", "sigmoid"] = "normrelu"

    @field_validator("channels")
    @classmethod
    def _positive_channels(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(c < 1 for c in value):
            raise ValueError("every channel count must be >= 1")
        return value

    @property
    def levels(self) -> int:
        """Number of down-sampling steps."""
        return len(self.channels) - 1


class TrainConfig(StrictModel):
    """One training stage."""

    epochs: int = Field(150, ge=1)
    max_epochs: int | None = Field(None, ge=1, description="Cap on epochs for shortened runs.")
    patch_size: IntTriple = (64, 64, 64)
    patches_per_case: int = Field(4, ge=1)
    cases_per_step: int = Field(4, ge=1)
    min_cases_per_epoch: int = Field(
        0,
        ge=0,
        description="An epoch passes over the stage's cases (each pass in a fresh random order) until it "
        "has visited at least this many, so a small center's stage still takes this many cases' steps per "
        "epoch (0: one pass, the paper's epoch).",
    )
    lesion_fraction: float = Field(0.5, ge=0, le=1, description="Share of patches centred on lesion.")
    lr: float = Field(1e-4, gt=0)
    weight_decay: float = Field(1e-5, ge=0)
    scheduler_step: int = Field(50, ge=1)
    scheduler_gamma: float = Field(0.5, gt=0, le=1)
    flips: bool = True
    rotations: bool = True
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    device: str = "auto"
    threads: int | None = Field(
        None,
        ge=1,
        description="torch CPU threads; default torch's (the cores). CPU results are bit-identical only at "
        "the same thread count.",
    )
    deterministic: bool = True
    checkpoint_every: int = Field(
        10, ge=0, description="Epochs between mid-stage resume points (0: only at stage ends)."
    )
    checkpoint_dir: Path = Field(Path("checkpoints"), description="Folder of mid-stage resume points.")

    @field_validator("patch_size")
    @classmethod
    def _positive_patch(cls, value: IntTriple) -> IntTriple:
        if any(p < 1 for p in value):
            raise ValueError("every patch size must be >= 1")
        return value


class StrategyOptions(StrictModel):
    """The ``strategy`` section: the settings every strategy has.

    A strategy with knobs of its own subclasses this model (its ``Strategy.options``); the section is
    validated against the model of the strategy that ``name`` names (a union discriminated by ``name``, its
    members found through the ``mscl.strategies`` entry points), so ``mscl config show`` prints, and MLflow
    params carry, exactly the chosen strategy's knobs.
    """

    name: str = Field("replay", description="A registered strategy (mscl.strategies entry points).")
    carry_over: Literal["full", "encoder"] = "full"


Selection = Literal["random", "lesion_stratified", "reservoir"]
"""Replay policies of :class:`mscl.strategies.replay_memory.ReplayPolicy`."""


class MemoryConfig(StrictModel):
    """Replay memory: backend, quota, selection."""

    backend: str = Field(
        "ram", description="A registered memory backend (mscl.memory_backends entry points)."
    )
    per_center_quota: int = Field(20, ge=1, description="Cases kept per center (random, lesion_stratified).")
    byte_budget: int | None = Field(
        None, ge=1, description="Max image + label bytes kept per center (reservoir: in the whole memory)."
    )
    selection: Selection = "random"
    capacity: int | None = Field(None, ge=1, description="Cases in the whole memory (reservoir only).")
    compression: bool = True
    path: Path | None = None

    @field_validator("backend")
    @classmethod
    def _registered_backend(cls, value: str) -> str:
        registry: Registry[type] = Registry(MEMORY_BACKENDS_GROUP, "memory backend", ConfigError)
        if value not in registry.names():
            raise ValueError(registry.unknown(value))
        return value

    @model_validator(mode="after")
    def _capacity_with_reservoir(self) -> MemoryConfig:
        if (self.selection == "reservoir") != (self.capacity is not None):
            raise ValueError("capacity is required by selection reservoir, and used by it only")
        return self


class ProtocolConfig(StrictModel):
    """Domain order, centers and seeds."""

    order: str = Field("descending", description="descending, random, or a comma-separated center list.")
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    order_seed: int | None = Field(None, ge=0, description="Seed of random orders; defaults to the seed.")
    centers: list[str] | None = Field(None, description="Subset of centers; default all.")

    @field_validator("seeds")
    @classmethod
    def _non_negative_seeds(cls, value: list[int]) -> list[int]:
        if any(s < 0 for s in value):
            raise ValueError("seeds must be >= 0")
        return value


class EvalConfig(StrictModel):
    """Sliding-window evaluation after every stage."""

    overlap: float = Field(0.25, ge=0, lt=1)
    window_batch: int = Field(8, ge=1)
    threshold: float = Field(0.5, gt=0, lt=1)
    empty_policy: Literal["one", "zero", "skip"] = Field(
        "one", description="Dice when prediction and label are both empty."
    )
    metrics: list[str] = Field(
        default_factory=lambda: list(DEFAULT_METRICS),
        min_length=1,
        description="Metrics scored per case after every stage (mscl.metrics entry points); the first leads.",
    )
    lesion_min_volume_mm3: float = Field(
        3.0,
        ge=0,
        description="Connected components smaller than this are not lesions (label and prediction).",
    )
    lesion_overlap: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="A lesion counts as found when more than this fraction of it is covered; 0: any voxel.",
    )
    lesion_connectivity: Literal[6, 18, 26] = Field(26, description="Voxel neighbourhood of a lesion.")
    ndsc_reference_load: float = Field(
        0.001, gt=0, lt=1, description="Reference lesion load r of normalised Dice (Raina et al., 2023)."
    )

    @field_validator("metrics")
    @classmethod
    def _registered_metrics(cls, value: list[str]) -> list[str]:
        repeated = sorted({name for name in value if value.count(name) > 1})
        if repeated:
            raise ValueError(f"metrics repeat {', '.join(repeated)}")
        registry: Registry[type] = Registry(METRICS_GROUP, "metric", ConfigError)
        unknown = [name for name in value if name not in registry.names()]
        if unknown:
            raise ValueError(registry.unknown(unknown[0]))
        return value


class TrackingConfig(StrictModel):
    """MLflow tracking."""

    uri: str | None = Field(None, description="Default: MLFLOW_TRACKING_URI or sqlite:///mlflow.db.")
    experiment: str = Field("mscl", min_length=1)
    system_metrics: bool = False
    connect_timeout_s: float = Field(
        5.0, gt=0, description="Seconds a tracking server may take to answer before a command fails."
    )
    retry_budget_s: float = Field(
        600.0,
        ge=0,
        le=1080,
        description="Seconds one request to a tracking server may wait out an outage during a command "
        "(retries with growing waits; at most 1080 s, MLflow's 10 retries of at most 120 s; 0: no retries).",
    )
    register_model: str | None = Field(
        None, min_length=1, description="Model Registry name for each seed's final stage model."
    )
    model_alias: str = Field("champion", min_length=1, description="The alias set on the registered version.")


class ExperimentConfig(StrictModel):
    """The whole experiment: every knob of prepare, train, evaluate."""

    preset: str | None = None
    data: DataConfig = Field(default_factory=DataConfig)
    synthetic: SyntheticConfig = Field(default_factory=SyntheticConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    strategy: SerializeAsAny[StrategyOptions] = Field(default_factory=StrategyOptions, validate_default=True)
    memory: MemoryConfig = Field(default_factory=MemoryConfig)
    protocol: ProtocolConfig = Field(default_factory=ProtocolConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)

    @field_validator("strategy", mode="before")
    @classmethod
    def _strategy_section(cls, value: Any) -> StrategyOptions:
        from mscl.strategies import STRATEGIES

        raw = value.model_dump() if isinstance(value, BaseModel) else value
        if not isinstance(raw, Mapping):
            raise ValueError(f"must be a mapping of strategy settings, not {type(raw).__name__}")
        name = raw.get("name", StrategyOptions.model_fields["name"].default)
        if not isinstance(name, str) or name not in STRATEGIES.names():
            raise ValueError(STRATEGIES.unknown(str(name)))
        try:
            options = STRATEGIES.get(name).options
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        try:
            return options.model_validate(raw)
        except ValidationError as exc:
            raise ValueError("; ".join(config_problems(exc))) from None

    @model_validator(mode="after")
    def _patch_fits_unet(self) -> ExperimentConfig:
        factor = 2**self.model.levels
        bad = [p for p in self.train.patch_size if p % factor]
        if bad:
            raise ValueError(
                f"train.patch_size {list(self.train.patch_size)} must be divisible by 2**levels = {factor} "
                f"(model.channels has {len(self.model.channels)} entries)"
            )
        return self

    def to_yaml(self) -> str:
        """The resolved configuration as YAML (tuples as lists, paths as strings)."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)

    def flat(self) -> dict[str, str]:
        """Flattened ``section.key -> value`` strings, as logged to MLflow params."""
        return flatten_config(self.model_dump(mode="json"))


SECTIONS: tuple[str, ...] = tuple(name for name in ExperimentConfig.model_fields if name != "preset")
"""The sections of a configuration: each must be a mapping of settings."""


NOT_PARAMS: tuple[str, ...] = ("synthetic.centers",)
"""Settings logged in ``config.yaml`` but not as MLflow params: the center profiles (about 130 values, none of
them a training knob) are recorded in ``dataset.json``; the data digest every run logs covers their images."""


def flatten_config(tree: Mapping[str, Any]) -> dict[str, str]:
    """Flattened ``section.key -> value`` strings of a config mapping (e.g. a logged ``config.yaml``), as
    logged to MLflow params: everything but :data:`NOT_PARAMS`."""
    return {
        key: str(value)
        for key, value in _flatten(tree).items()
        if not any(key.startswith(f"{prefix}.") for prefix in NOT_PARAMS)
    }


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat
