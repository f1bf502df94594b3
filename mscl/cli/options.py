"""Option types shared by several commands (one definition, many commands)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

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


def given(**values: object) -> dict[str, object]:
    """Only the options the user actually gave (``None`` means not given)."""
    return {key: value for key, value in values.items() if value is not None}
