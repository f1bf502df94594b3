"""``mscl predict``: segment new scans with a stage model, the masks on each scan's own grid."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mscl.cli.options import QuietOption


def predict(
    model: Annotated[
        str, typer.Option("--model", "-m", help="models:/NAME@ALIAS, models:/<model id>, or a run id.")
    ],
    input_path: Annotated[
        Path,
        typer.Option("--input", "-i", help="A NIfTI file, a folder of them, a CSV manifest or a BIDS tree."),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (written atomically).")],
    stage: Annotated[
        int | None, typer.Option("--stage", min=1, help="1-based stage of a parent run id (default: last).")
    ] = None,
    threshold: Annotated[
        float | None,
        typer.Option(
            "--threshold", min=0.0, max=1.0, help="Mask cut on probabilities (default: the model's)."
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing output folder.")
    ] = False,
    tracking_uri: Annotated[str | None, typer.Option("--tracking-uri", help="MLflow tracking URI.")] = None,
    quiet: QuietOption = False,
) -> None:
    """Segment scans with a stage model: masks, probabilities and predictions.csv; exit 1 if a scan failed."""
    from mscl.predict.run import predict as run_predict

    def warn(line: str) -> None:
        typer.echo(line, err=True)

    report = run_predict(
        model, input_path, out, stage=stage, threshold=threshold, tracking_uri=tracking_uri,
        overwrite=overwrite, quiet=quiet, warn=warn,
    )  # fmt: skip
    if not quiet and report.rows:
        typer.echo(f"{len(report.rows)} scan(s) segmented with {report.model.uri} into {out}")
    if report.failures:
        warn(f"{len(report.failures)} scan(s) failed:")
        for failure in report.failures:
            warn(f"  {failure}")
        raise typer.Exit(1)
