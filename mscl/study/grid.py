"""The grid of a study: which (strategy, seed, order) studies it holds, and the configuration of each.

Every cell is exactly what ``mscl train --strategy S --seed-list K --order O`` would run with the same
preset, file and overrides: its configuration comes from the one resolution path of every command
(:func:`mscl.config.load_config`). The strategies whose R matrix does not depend on the domain order
(``single``, ``joint``) get one cell per seed, with the grid's first order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator

from mscl.config import ExperimentConfig, Override, config_problems, load_config
from mscl.errors import ConfigError
from mscl.protocol.kinds import SEQUENTIAL_KINDS
from mscl.schema import StrictModel

STUDY_SECTION = "study"
"""The top-level key of a YAML config file that holds the grid (the rest configures every study)."""


class StudySettings(StrictModel):
    """The ``study:`` section: the grid and how it is executed."""

    strategies: list[str] = Field(min_length=1, description="Registered strategies, e.g. [finetune, replay].")
    seeds: list[int] = Field(
        default_factory=lambda: [0], min_length=1, description="Seeds of every strategy."
    )
    orders: list[str] = Field(
        default_factory=lambda: ["descending"],
        min_length=1,
        description="Domain orders: descending, random, or comma-separated center lists.",
    )
    workers: int | None = Field(
        None, ge=1, description="Studies at once on a local Ray instance; default: GPUs, or 1 on CPU."
    )
    gpus_per_study: float | None = Field(
        None, gt=0, description="GPUs each study asks Ray for (0.5 packs two on a GPU); default 1 with GPUs."
    )
    cpus_per_study: int | None = Field(
        None, ge=1, description="CPUs (and torch threads) of each study; default: the cores split evenly."
    )
    address: str | None = Field(None, description="Ray cluster: auto or ray://HOST:PORT; default local.")
    max_retries: int = Field(3, ge=0, description="Retries of a study whose worker died (resumed each time).")

    @field_validator("strategies", "orders")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("must not repeat a name")
        return value

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, value: list[int]) -> list[int]:
        if len(set(value)) != len(value) or any(seed < 0 for seed in value):
            raise ValueError("must be distinct seeds >= 0")
        return value


def study_settings(mapping: Mapping[str, Any], source: str) -> StudySettings:
    """Validate a ``study:`` mapping, naming every problem as ``study.key: problem``."""
    try:
        return StudySettings.model_validate(mapping)
    except ValidationError as exc:
        problems = [f"{STUDY_SECTION}.{problem}" for problem in config_problems(exc)]
        raise ConfigError(f"{source}: " + "; ".join(problems)) from None


@dataclass(frozen=True, order=True)
class Cell:
    """One study of the grid: a strategy, a seed and a domain order."""

    strategy: str
    seed: int
    order: str

    @property
    def key(self) -> str:
        """The cell's name in tags and summaries, e.g. ``replay/seed0/descending``."""
        return f"{self.strategy}/seed{self.seed}/{self.order}"


def grid_cells(settings: StudySettings) -> list[Cell]:
    """The cells of the grid, strategy by strategy, then seed, then order; order-independent strategies
    (``single``, ``joint``) only with the first order."""
    from mscl.strategies import STRATEGIES

    cells = []
    for strategy in settings.strategies:
        STRATEGIES.check(strategy)
        sequential = STRATEGIES.get(strategy).kind in SEQUENTIAL_KINDS
        orders = settings.orders if sequential else settings.orders[:1]
        cells += [Cell(strategy, seed, order) for seed in settings.seeds for order in orders]
    return cells


def cell_overrides(cell: Cell) -> dict[str, Any]:
    """The settings a cell adds over the study's own: its strategy, its one seed and its order."""
    return {
        "strategy": {"name": cell.strategy},
        "protocol": {"seeds": [cell.seed], "order": cell.order},
    }


def cell_configs(
    cells: Sequence[Cell],
    preset: str | None,
    config_file: Path | None,
    overrides: Sequence[Override],
) -> dict[Cell, ExperimentConfig]:
    """Resolve every cell's configuration before anything runs; a cell that does not validate is named.

    Raises:
        ConfigError: ``replay/seed0/descending: <problem>`` for the first cell that does not resolve.
    """
    configs = {}
    for cell in cells:
        try:
            configs[cell] = load_config(
                preset, config_file, [*overrides, cell_overrides(cell)], foreign=(STUDY_SECTION,)
            )
        except ConfigError as exc:
            raise ConfigError(f"{cell.key}: {exc}") from None
    return configs
