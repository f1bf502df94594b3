"""``mscl evaluate``: score a logged checkpoint on any prepared dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from mscl.cli.options import QuietOption


def evaluate(
    run_id: Annotated[str, typer.Option("--run-id", help="Parent run (last stage) or stage run.")],
    data: Annotated[Path, typer.Option("--data", "-d", help="Prepared dataset directory.")],
    stage: Annotated[
        int | None, typer.Option("--stage", min=1, help="1-based stage of a parent run.")
    ] = None,
    split: Annotated[
        Literal["test", "train", "all"], typer.Option("--split", help="Which cases to score.")
    ] = "test",
    save_predictions: Annotated[
        Path | None, typer.Option("--save-predictions", help="Folder for soft predictions (NIfTI).")
    ] = None,
    tracking_uri: Annotated[str | None, typer.Option("--tracking-uri", help="MLflow tracking URI.")] = None,
    quiet: QuietOption = False,
) -> None:
    """Score a logged stage checkpoint on every center of a dataset; logs an evaluate run."""
    from mscl.api import evaluate_run

    evaluate_run(
        run_id,
        data,
        stage=stage,
        split=split,
        save_predictions=save_predictions,
        tracking_uri=tracking_uri,
        quiet=quiet,
    )
