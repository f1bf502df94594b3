"""``mscl ui-url``: the command serving the MLflow UI and the address of an experiment's runs table."""

from __future__ import annotations

from typing import Annotated

import typer


def ui_url(
    experiment: Annotated[str, typer.Option("--experiment", "-e", help="MLflow experiment.")] = "mscl",
    tracking_uri: Annotated[
        str | None,
        typer.Option("--tracking-uri", help="Default: MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here."),
    ] = None,
    port: Annotated[int, typer.Option("--port", help="The port `mlflow ui` serves on.")] = 5000,
) -> None:
    """Print how to open an experiment's runs table in the MLflow UI, its continual metrics as columns."""
    from mscl.tracking.ui import ui_lines
    from mscl.tracking.uri import connect_existing

    for line in ui_lines(connect_existing(tracking_uri), experiment, port):
        typer.echo(line)
