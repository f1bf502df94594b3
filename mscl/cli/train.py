"""``mscl train``: run a strategy over the domain sequence for one or more seeds, tracked in MLflow."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from mscl.cli.options import (
    AliasOption,
    ConfigOption,
    PresetOption,
    QuietOption,
    RegisterOption,
    SetOption,
    given,
    parse_seeds,
)
from mscl.errors import ConfigError
from mscl.strategies import STRATEGIES


def train(
    data: Annotated[Path, typer.Option("--data", "-d", help="Prepared dataset directory.")],
    strategy: Annotated[
        str | None,
        typer.Option("--strategy", "-s", help=f"A registered strategy: {', '.join(STRATEGIES.names())}."),
    ] = None,
    preset: PresetOption = None,
    config: ConfigOption = None,
    set_: SetOption = None,
    order: Annotated[
        str | None, typer.Option("--order", help="descending, random, or a list like BWH,Karo,Milan.")
    ] = None,
    seeds: Annotated[int | None, typer.Option("--seeds", help="Run seeds 0..N-1.")] = None,
    seed_list: Annotated[str | None, typer.Option("--seed-list", help="Explicit seeds, e.g. 5,9,46.")] = None,
    order_seed: Annotated[
        int | None, typer.Option("--order-seed", help="Seed of random orders, apart from the init seed.")
    ] = None,
    carry_over: Annotated[str | None, typer.Option("--carry-over", help="full or encoder.")] = None,
    memory_backend: Annotated[
        str | None, typer.Option("--memory-backend", help="Replay memory backend: ram, hdf5, zarr, ...")
    ] = None,
    memory_path: Annotated[
        Path | None, typer.Option("--memory-path", help="Folder of the replay memory stores.")
    ] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", help="Epochs per stage.")] = None,
    max_epochs: Annotated[
        int | None, typer.Option("--max-epochs", help="Cap on epochs per stage (shortened runs).")
    ] = None,
    device: Annotated[str | None, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")] = None,
    threads: Annotated[
        int | None, typer.Option("--threads", help="torch CPU threads (default: the cores).")
    ] = None,
    tracking_uri: Annotated[str | None, typer.Option("--tracking-uri", help="MLflow tracking URI.")] = None,
    experiment: Annotated[str | None, typer.Option("--experiment", help="MLflow experiment name.")] = None,
    system_metrics: Annotated[
        bool, typer.Option("--system-metrics", help="Log CPU/GPU/memory use to MLflow (needs psutil).")
    ] = False,
    resume: Annotated[
        str | None, typer.Option("--resume", help="Continue the interrupted parent run with this id.")
    ] = None,
    parallel: Annotated[
        int,
        typer.Option(
            "--parallel",
            help="Seeds trained at once on Ray: `mscl study` with one strategy (needs mscl[ray]).",
        ),
    ] = 1,
    verify_data: Annotated[
        bool,
        typer.Option("--verify-data", help="Check every case's sha256 first (default: only that it reads)."),
    ] = False,
    register: RegisterOption = None,
    alias: AliasOption = None,
    quiet: QuietOption = False,
) -> None:
    """Train a strategy stage by stage and score every center after every stage."""
    from mscl.config import load_config

    flags: dict[str, Any] = {
        "strategy": given(name=strategy, carry_over=carry_over),
        "protocol": given(order=order, seeds=parse_seeds(seeds, seed_list), order_seed=order_seed),
        "memory": given(backend=memory_backend, path=memory_path),
        "train": given(epochs=epochs, max_epochs=max_epochs, device=device, threads=threads),
        "tracking": given(
            uri=tracking_uri,
            experiment=experiment,
            system_metrics=system_metrics or None,
            register_model=register,
            model_alias=alias,
        ),
    }
    overrides = [*(set_ or ()), flags]
    if quiet:  # MLflow prints a "View run ... at http://..." line per run against a server
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    if resume is not None:
        from mscl.api import resume_study

        flags_given = {"--seeds": seeds, "--seed-list": seed_list, "--parallel": None if parallel == 1 else 1}
        refused = ", ".join(name for name, value in flags_given.items() if value is not None)
        if refused:
            raise ConfigError(f"{refused} cannot be used with --resume: a resumed run has its one seed")
        resume_study(
            resume, data, tracking_uri=tracking_uri, preset=preset, config_file=config, overrides=overrides,
            quiet=quiet, verify_data=verify_data,
        )  # fmt: skip
        return
    if parallel != 1:
        from mscl.study.run import train_parallel

        train_parallel(
            data, load_config(preset, config, overrides), parallel, quiet=quiet, verify_data=verify_data
        )
        return
    from mscl.api import train_study

    train_study(data, load_config(preset, config, overrides), quiet=quiet, verify_data=verify_data)
