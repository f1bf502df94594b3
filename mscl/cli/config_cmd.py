"""``mscl config show | validate``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mscl.cli.options import ConfigOption, PresetOption, SetOption

app = typer.Typer(no_args_is_help=True, help="Show or validate experiment configurations.")


@app.command("show")
def show(preset: PresetOption = None, config: ConfigOption = None, set_: SetOption = None) -> None:
    """Print the resolved configuration as YAML."""
    from mscl.config import load_config

    typer.echo(load_config(preset, config, set_ or ()).to_yaml(), nl=False)


@app.command("validate")
def validate(
    file: Annotated[Path, typer.Argument(help="YAML config file to check.")],
    preset: PresetOption = None,
) -> None:
    """Report every problem in a config file with its path (exit code 2 when invalid)."""
    from pydantic import ValidationError

    from mscl.config import (
        DEFAULT_PRESET,
        ExperimentConfig,
        config_problems,
        merge_layers,
        preset_mapping,
        read_yaml,
    )

    user = read_yaml(file)
    name = preset or user.get("preset") or DEFAULT_PRESET
    try:
        ExperimentConfig.model_validate(
            {**merge_layers(preset_mapping(name), [(str(file), user)]), "preset": name}
        )
    except ValidationError as exc:
        for problem in config_problems(exc):
            typer.echo(f"{file}: {problem}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"{file}: valid (preset {name})")
