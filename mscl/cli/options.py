"""Option types shared by several commands (one definition, many commands)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mscl.errors import ConfigError

PresetOption = Annotated[
    str | None, typer.Option("--preset", "-p", help="Shipped preset: tiny, quick or paper.")
]
ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="YAML file with any subset of the config sections.")
]
SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override one setting, e.g. --set train.epochs=3 (repeatable)."),
]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]
RegisterOption = Annotated[
    str | None,
    typer.Option("--register", help="Register the final stage's model under this name (MLflow registry)."),
]
AliasOption = Annotated[
    str | None, typer.Option("--alias", help="Alias of the registered version (default champion).")
]


def given(**values: object) -> dict[str, object]:
    """Only the options the user actually gave (``None`` means not given)."""
    return {key: value for key, value in values.items() if value is not None}


def parse_seeds(count: int | None, listed: str | None) -> list[int] | None:
    """The seeds of ``--seeds N`` (0..N-1) or ``--seed-list 5,9,46``; ``None`` when neither is given."""
    if count is not None and listed is not None:
        raise ConfigError("give --seeds N or --seed-list, not both")
    if count is not None:
        if count < 1:
            raise ConfigError("--seeds must be >= 1")
        return list(range(count))
    if listed is not None:
        try:
            return [int(s) for s in listed.split(",") if s.strip()]
        except ValueError:
            raise ConfigError(f"--seed-list {listed!r}: expected integers like 5,9,46") from None
    return None
