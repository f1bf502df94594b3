"""``mscl extend``: add new hospitals to a finished study, from its checkpoint and replay memory."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from mscl.cli.options import AliasOption, QuietOption, RegisterOption, SetOption, given


def extend(
    run_id: Annotated[str, typer.Argument(help="Parent run of a finished study (a sequential strategy).")],
    data: Annotated[
        Path,
        typer.Option("--data", "-d", help="Prepared dataset of the new center(s), study's preprocessing."),
    ],
    centers: Annotated[
        str | None, typer.Option("--centers", help="New centers of --data in training order, e.g. AMU,UCSF.")
    ] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", help="Epochs of each new stage.")] = None,
    memory_path: Annotated[
        Path | None, typer.Option("--memory-path", help="Folder the replay memory store was moved to.")
    ] = None,
    eval_data: Annotated[
        Path | None,
        typer.Option("--eval-data", help="Dataset with the earlier centers' test splits (default: logged)."),
    ] = None,
    set_: SetOption = None,
    tracking_uri: Annotated[str | None, typer.Option("--tracking-uri", help="MLflow tracking URI.")] = None,
    register: RegisterOption = None,
    alias: AliasOption = None,
    quiet: QuietOption = False,
) -> None:
    """Train new centers as new stages of a finished study; its parent run grows only once they finished."""
    from mscl.extend import extend_study

    flags: dict[str, Any] = {
        "train": given(epochs=epochs),
        "memory": given(path=memory_path),
        "tracking": given(register_model=register, model_alias=alias),
    }
    if quiet:  # MLflow prints a "View run ... at http://..." line per run against a server
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    extend_study(
        run_id,
        data,
        centers=[c.strip() for c in centers.split(",") if c.strip()] if centers else None,
        overrides=[*(set_ or ()), flags],
        eval_data=eval_data,
        tracking_uri=tracking_uri,
        quiet=quiet,
    )
