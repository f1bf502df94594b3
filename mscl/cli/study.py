"""``mscl study``: a grid of strategies x seeds x orders on Ray, under one MLflow study run."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mscl.cli.options import ConfigOption, PresetOption, QuietOption, SetOption, given, parse_seeds
from mscl.errors import ConfigError

if TYPE_CHECKING:
    from mscl.config import Override
    from mscl.study.grid import StudySettings
    from mscl.study.tracking import Grid


def study(
    data: Annotated[
        Path | None, typer.Option("--data", "-d", help="Prepared dataset (default on --resume: the study's).")
    ] = None,
    strategies: Annotated[
        str | None, typer.Option("--strategies", help="Comma-separated strategies, e.g. finetune,replay.")
    ] = None,
    preset: PresetOption = None,
    config: ConfigOption = None,
    set_: SetOption = None,
    seeds: Annotated[int | None, typer.Option("--seeds", help="Seeds 0..N-1 of every strategy.")] = None,
    seed_list: Annotated[str | None, typer.Option("--seed-list", help="Explicit seeds, e.g. 5,9,46.")] = None,
    orders: Annotated[
        str | None,
        typer.Option("--orders", help="descending, random or center lists, separated by ';' (or ',')."),
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", help="Studies at once locally (default: GPUs, or 1 on CPU).")
    ] = None,
    gpus_per_study: Annotated[
        float | None, typer.Option("--gpus-per-study", help="GPUs per study; 0.5 packs two on a GPU.")
    ] = None,
    cpus_per_study: Annotated[
        int | None, typer.Option("--cpus-per-study", help="CPUs (torch threads) per study.")
    ] = None,
    address: Annotated[
        str | None, typer.Option("--address", help="Ray cluster: auto or ray://HOST:PORT (default: local).")
    ] = None,
    max_retries: Annotated[
        int | None, typer.Option("--max-retries", help="Retries of a study whose worker died (default 3).")
    ] = None,
    tracking_uri: Annotated[str | None, typer.Option("--tracking-uri", help="MLflow tracking URI.")] = None,
    experiment: Annotated[str | None, typer.Option("--experiment", help="MLflow experiment name.")] = None,
    resume: Annotated[
        str | None, typer.Option("--resume", help="Finish the interrupted study run with this id.")
    ] = None,
    report: Annotated[
        Path | None, typer.Option("--report", help="Build the experiment's report here at the end.")
    ] = None,
    verify_data: Annotated[
        bool,
        typer.Option("--verify-data", help="Check every case's sha256 first (default: only that it reads)."),
    ] = False,
    quiet: QuietOption = False,
) -> None:
    """Run every (strategy, seed, order) of a grid, each exactly as `mscl train` runs it."""
    from mscl.cli.report import check_report_folder
    from mscl.study.run import run_grid

    if report is not None:
        check_report_folder(report)
    execution = given(
        workers=workers, gpus_per_study=gpus_per_study, cpus_per_study=cpus_per_study, address=address,
        max_retries=max_retries,
    )  # fmt: skip
    grid_flags = given(
        strategies=_names(strategies), seeds=parse_seeds(seeds, seed_list), orders=_orders(orders)
    )
    if resume is not None:
        grid, settings, resume_id = _resumed(
            resume, data, tracking_uri, grid_flags, execution, preset, config, set_
        )
        grid = run_grid(
            grid, quiet=quiet, verify_data=verify_data, resume_run_id=resume_id, settings=settings
        )
    else:
        if data is None:
            raise ConfigError("--data is required (the prepared dataset every study trains on)")
        settings = _settings(config, {**grid_flags, **execution})
        overrides: list[Override] = [
            *(set_ or ()),
            {"tracking": given(uri=tracking_uri, experiment=experiment)},
        ]
        grid = _grid(data, settings, preset, config, overrides)
        grid = run_grid(grid, quiet=quiet, verify_data=verify_data)
    if report is not None:
        from mscl.cli.report import report as build_report

        tracking = grid.tracking()
        build_report(experiment=tracking.experiment, out=report, tracking_uri=tracking.uri)


def _settings(config: Path | None, flags: dict[str, Any]) -> StudySettings:
    """The ``study:`` section of the config file with the flags over it, validated."""
    from mscl.config import read_yaml
    from mscl.study.grid import STUDY_SECTION, study_settings

    section = read_yaml(config).get(STUDY_SECTION, {}) if config is not None else {}
    if not isinstance(section, dict):
        raise ConfigError(f"{config}: {STUDY_SECTION}: must be a mapping of settings")
    merged = {**section, **flags}
    if "strategies" not in merged:
        raise ConfigError(
            "name the strategies of the grid: --strategies finetune,replay (or study.strategies)"
        )
    return study_settings(merged, str(config) if config is not None else "mscl study")


def _grid(
    data: Path, settings: StudySettings, preset: str | None, config: Path | None, overrides: list[Override]
) -> Grid:
    from mscl.study.grid import cell_configs, grid_cells
    from mscl.study.run import new_grid

    return new_grid(data, settings, cell_configs(grid_cells(settings), preset, config, overrides))


def _resumed(
    run_id: str,
    data: Path | None,
    tracking_uri: str | None,
    grid_flags: dict[str, Any],
    execution: dict[str, Any],
    preset: str | None,
    config: Path | None,
    set_: list[str] | None,
) -> tuple[Grid, StudySettings, str]:
    """The logged grid of study run ``run_id``, to run with the given execution settings."""
    from dataclasses import replace

    from mlflow.tracking import MlflowClient

    from mscl.study.tracking import read_study_run
    from mscl.tracking.runs import use_tracking_uri

    refused = [
        name for name, given_ in (("--preset", preset), ("--config", config), ("--set", set_)) if given_
    ]
    refused += [f"--{name.replace('_', '-')}" for name in grid_flags]
    if refused:
        raise ConfigError(
            f"{', '.join(refused)} cannot be used with --resume: a resumed study keeps its grid"
        )
    client = MlflowClient(use_tracking_uri(tracking_uri, existing=True))
    _, grid = read_study_run(client, run_id)
    if data is not None:
        grid = replace(grid, data_dir=data.resolve())
    settings = grid.settings.model_copy(update=execution)
    return grid, settings, run_id


def _names(text: str | None) -> list[str] | None:
    return [name.strip() for name in text.split(",") if name.strip()] if text else None


def _orders(text: str | None) -> list[str] | None:
    """``descending;random;A,B,C`` (``;`` between orders); without ``;`` a comma list of order kinds."""
    if not text:
        return None
    if ";" in text:
        return [order.strip() for order in text.split(";") if order.strip()]
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if all(part in ("descending", "random") for part in parts):
        return parts
    return [text.strip()]
