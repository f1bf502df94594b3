"""The ``mscl`` Typer app: global options, the error boundary, and command registration."""

from __future__ import annotations

import os
from typing import Annotated, Any

import click
import typer
from typer.core import TyperGroup

from mscl import __version__
from mscl.errors import MsclError
from mscl.permissions import owner_writes


class ErrorBoundaryGroup(TyperGroup):
    """Turns every :class:`MsclError` into one line on stderr and exit code 2 (traceback with --debug);
    every command writes with group and world write permission masked (:mod:`mscl.permissions`)."""

    def invoke(self, ctx: Any) -> Any:  # typer's vendored click Context, not click's own
        try:
            with owner_writes():
                return super().invoke(ctx)
        except MsclError as exc:
            if (ctx.obj or {}).get("debug") or os.environ.get("MSCL_DEBUG"):
                raise
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)


app = typer.Typer(
    cls=ErrorBoundaryGroup,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Continual learning of MS lesion segmentation across hospitals.",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mscl {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """mscl: prepare | train | evaluate | report."""
    ctx.obj = {"debug": debug}
    # MLflow draws a bar for every artifact download (resume and evaluate read a few): noise around the one
    # line an error is; a value the user set is kept
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def _register() -> None:
    from mscl.cli import (
        audit,
        bench,
        config_cmd,
        evaluate,
        extend,
        memory,
        predict,
        prepare,
        report,
        shift,
        study,
        train,
        ui,
    )

    app.add_typer(config_cmd.app, name="config")
    app.command("prepare")(prepare.prepare)
    app.command("train")(train.train)
    app.command("extend")(extend.extend)
    app.command("study")(study.study)
    app.command("evaluate")(evaluate.evaluate)
    app.command("predict")(predict.predict)
    app.add_typer(memory.app, name="memory")
    app.command("report")(report.report)
    app.command("audit")(audit.audit)
    app.command("bench")(bench.bench)
    app.command("shift")(shift.shift)
    app.command("ui-url")(ui.ui_url)


_register()


if __name__ == "__main__":
    app()
