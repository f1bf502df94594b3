"""``mscl prepare``: real data (BIDS or CSV manifest) or the synthetic multi-center default."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from mscl.cli.options import ConfigOption, PresetOption, QuietOption, SetOption, given
from mscl.errors import ConfigError


def prepare(
    out: Annotated[Path, typer.Option("--out", "-o", help="Dataset directory to write.")],
    bids: Annotated[Path | None, typer.Option("--bids", help="BIDS root with sub-*/anat images.")] = None,
    manifest: Annotated[
        Path | None,
        typer.Option("--manifest", help="CSV with columns subject, center, contrast, image, label."),
    ] = None,
    synthetic: Annotated[bool, typer.Option("--synthetic", help="Generate the synthetic dataset.")] = False,
    preset: PresetOption = None,
    config: ConfigOption = None,
    set_: SetOption = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Synthetic generator seed.")] = None,
    spacing: Annotated[
        float | None, typer.Option("--spacing", help="Isotropic target spacing in mm (real data).")
    ] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="Volume store: zarr or hdf5.")] = None,
    workers: Annotated[int | None, typer.Option("--workers", "-j", help="Parallel processes.")] = None,
    test_fraction: Annotated[
        float | None, typer.Option("--test-fraction", help="Share of each center's subjects in test.")
    ] = None,
    split_seed: Annotated[int | None, typer.Option("--split-seed", help="Seed of the split.")] = None,
    labels_dir: Annotated[
        str | None, typer.Option("--labels-dir", help="BIDS derivatives folder of the masks.")
    ] = None,
    label_suffix: Annotated[str | None, typer.Option("--label-suffix", help="Mask file suffix.")] = None,
    center_column: Annotated[
        str | None, typer.Option("--center-column", help="participants.tsv column naming the center.")
    ] = None,
    centers: Annotated[
        str | None,
        typer.Option("--centers", help="Synthetic only: these centers, e.g. AMU (a hospital joining later)."),
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing directory.")] = False,
    shift_check: Annotated[
        bool | None,
        typer.Option(
            "--shift-check/--no-shift-check",
            help="Print the domain-shift check (mscl shift) after the summary; default: on for --synthetic.",
        ),
    ] = None,
    quiet: QuietOption = False,
) -> None:
    """Prepare a dataset directory (dataset.json + volumes) from real or synthetic data."""
    chosen = [name for name, value in (("--bids", bids), ("--manifest", manifest)) if value] + (
        ["--synthetic"] if synthetic else []
    )
    if len(chosen) != 1:
        raise ConfigError("give exactly one source: --bids DIR, --manifest CSV or --synthetic")
    if centers is not None and not synthetic:
        raise ConfigError("--centers chooses synthetic centers; give --synthetic")
    flags: dict[str, Any] = {
        "data": given(
            spacing=[spacing] * 3 if spacing is not None else None,
            format=fmt,
            workers=workers,
            test_fraction=test_fraction,
            split_seed=split_seed,
            labels_dir=labels_dir,
            label_suffix=label_suffix,
            center_column=center_column,
        ),
        "synthetic": given(seed=seed),
    }
    from mscl.config import load_config

    cfg = load_config(preset, config, [*(set_ or ()), flags])
    console = Console(quiet=quiet)
    if synthetic:
        from mscl.data.synthetic.generator import generate_dataset

        wanted = [c.strip() for c in centers.split(",") if c.strip()] if centers else None
        result = generate_dataset(out, cfg, overwrite=overwrite, quiet=quiet, centers=wanted)
    else:
        from mscl.data.prepare import prepare_real

        kind, path = ("bids", bids) if bids else ("manifest", manifest)
        result = prepare_real(kind, path, out, cfg.data, overwrite=overwrite, quiet=quiet)  # type: ignore[arg-type]
    from mscl.data.summary import summary_table

    console.print(summary_table(result))
    console.print(f"dataset written to {out}")
    if (synthetic if shift_check is None else shift_check) and not quiet:
        from mscl.cli.shift import compute_shift, shift_tables

        console.print(*shift_tables(compute_shift(out, quiet=False)))
