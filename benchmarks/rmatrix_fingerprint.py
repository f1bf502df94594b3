"""R matrices of the built-in strategies on the tiny synthetic preset, as JSON: a refactoring check.

Run it before and after a change that must not alter what a study computes, and compare the two files::

    python benchmarks/rmatrix_fingerprint.py --out before.json     # on the old commit
    python benchmarks/rmatrix_fingerprint.py --out after.json      # on the new one
    cmp before.json after.json

Every strategy trains seed 0 on the same freshly generated tiny dataset, on CPU (bitwise reproducible);
the file holds each strategy's untrained row and R matrix of Dice, with full float precision.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

STRATEGIES = ("single", "finetune", "replay", "joint", "cumulative")


def fingerprint(
    work: Path,
    strategies: tuple[str, ...],
    epochs: int,
    data: Path | None = None,
    overrides: tuple[str, ...] = (),
) -> dict[str, dict[str, object]]:
    """Train every strategy once for ``epochs`` a stage on ``data`` (default: the tiny synthetic dataset,
    generated under ``work``), with ``overrides`` (``section.key=value``) on the tiny preset."""
    from mscl.api import train_study
    from mscl.config import load_config
    from mscl.data.synthetic.generator import generate_dataset

    if data is None:
        data = work / "data"
        generate_dataset(data, load_config("tiny"), quiet=True)
    out: dict[str, dict[str, object]] = {}
    for name in strategies:
        cfg = load_config(
            "tiny",
            overrides=[
                f"strategy.name={name}",
                "train.device=cpu",
                f"train.epochs={epochs}",
                f"tracking.uri=sqlite:///{work / 'mlflow.db'}",
                f"train.checkpoint_dir={work / 'checkpoints'}",
                *overrides,
            ],
        )
        (result,) = train_study(data, cfg, quiet=True)
        out[name] = {
            "order": result.order,
            "centers": result.centers,
            "baseline": _baseline(result),
            "dice": result.matrix.tolist(),
        }
    return out


def _baseline(result: object) -> list[float]:
    """The untrained Dice row, from a result of either side of the metrics registry (format 1 or 2)."""
    baseline_of = getattr(result, "baseline_of", None)
    if baseline_of is not None:
        return list(baseline_of("dice"))
    return [result.baseline[c] for c in result.centers]  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--epochs", type=int, default=2, help="epochs a stage (the tiny preset: 2)")
    parser.add_argument("--data", type=Path, help="a prepared dataset instead of the tiny synthetic one")
    parser.add_argument("--set", action="append", default=[], help="override, e.g. model.channels=[2,4,8]")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mscl-fingerprint-") as tmp:
        strategies = tuple(args.strategies.split(","))
        result = fingerprint(Path(tmp), strategies, args.epochs, args.data, tuple(args.set))
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
