"""``mscl bench``: model-only versus end-to-end training throughput, evaluation and memory-load speed."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from mscl.cli.options import ConfigOption, PresetOption, QuietOption, SetOption, given
from mscl.errors import ConfigError
from mscl.strategies import STRATEGIES


def bench(
    preset: PresetOption = None,
    config: ConfigOption = None,
    set_: SetOption = None,
    data: Annotated[
        Path | None,
        typer.Option("--data", "-d", help="Prepared dataset; default: random volumes of the preset's size."),
    ] = None,
    device: Annotated[str | None, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")] = None,
    steps: Annotated[int, typer.Option("--steps", help="Timed training steps, at least.")] = 16,
    threads: Annotated[
        int | None, typer.Option("--threads", help="torch intra-op threads (CPU); default torch's choice.")
    ] = None,
    strategies: Annotated[
        str | None,
        typer.Option(
            "--strategies", help="Also time these strategies' steps end to end, e.g. ewc,lwf,replay."
        ),
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the figures to this JSON file.")
    ] = None,
    quiet: QuietOption = False,
) -> None:
    """Measure training throughput (model alone and end to end), evaluation and memory loads."""
    if steps < 1:
        raise ConfigError("--steps must be >= 1")
    if threads is not None:
        if threads < 1:
            raise ConfigError("--threads must be >= 1")
        import torch

        torch.set_num_threads(threads)
    from mscl.config import load_config

    cfg = load_config(preset, config, [*(set_ or ()), {"train": given(device=device)}])
    names = [STRATEGIES.check(name.strip()) for name in (strategies or "").split(",") if name.strip()]
    from mscl.bench import run_bench

    console = Console(quiet=quiet, stderr=True)
    report = run_bench(
        cfg,
        data_dir=data,
        steps=steps,
        strategies=names,
        note=lambda line: console.print(f"[dim]{line}[/dim]"),
    )
    Console().print(report.table())
    if json_out is not None:
        report.write_json(json_out)
