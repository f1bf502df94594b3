"""Wall time of one grid, sequential `mscl train` against `mscl study` on a local Ray instance, same run.

    .venv/bin/python benchmarks/study_grid.py [--out DIR] [--preset tiny] [--strategies finetune,replay]
        [--seeds 2] [--workers 2] [--epochs 2] [--threads 1]

Each side is one cold `mscl` process per command (what a user types), every study at `--threads` torch
threads (CPU results are identical only at the same thread count): the sequential side one `mscl train
--seeds N` per strategy, the Ray side one `mscl study`. Prints both wall times, their ratio, and whether the
two gave the same R matrices (they must, on CPU).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from mlflow.tracking import MlflowClient

from mscl.tracking import tree
from mscl.tracking.rmatrix import load_r_matrix

MSCL = [sys.executable, "-m", "mscl.cli.main"]


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def matrices(uri: str, experiment: str) -> dict[str, object]:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], f"tags.`{tree.SEED_TAG}` != ''")
    return {
        f"{r.data.tags[tree.STRATEGY_TAG]}/{r.data.tags[tree.SEED_TAG]}": load_r_matrix(client, r.info.run_id)
        .metrics["dice"]
        .matrix
        for r in runs
        if r.info.run_name.startswith(r.data.tags[tree.STRATEGY_TAG] + "-seed")
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/mscl-study-grid"))
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--strategies", default="finetune,replay")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of every study, both sides")
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    uri = f"sqlite:///{args.out.resolve()}/mlflow.db"
    data = str(args.out / "data")
    subprocess.run(
        [*MSCL, "prepare", "--synthetic", "--preset", args.preset, "--out", data, "--quiet"], check=True
    )
    common = [
        "--preset", args.preset, "--set", f"train.epochs={args.epochs}", "--tracking-uri", uri, "--quiet",
        "--set", f"train.checkpoint_dir={args.out}/checkpoints", "--seeds", str(args.seeds),
        "--set", f"train.threads={args.threads}",
    ]  # fmt: skip
    strategies = args.strategies.split(",")
    sequential = sum(
        timed([*MSCL, "train", "--data", data, "-s", s, *common, "--experiment", "sequential"])
        for s in strategies
    )
    ray = timed(
        [*MSCL, "study", "--data", data, "--strategies", args.strategies, "--workers", str(args.workers),
         *common, "--experiment", "ray"]
    )  # fmt: skip
    same = matrices(uri, "sequential") == matrices(uri, "ray")
    result = {
        "grid": f"{len(strategies)} strategies x {args.seeds} seeds, {args.preset}, {args.epochs} epochs",
        "sequential_s": round(sequential, 1),
        "ray_s": round(ray, 1),
        "workers": args.workers,
        "threads_per_study": args.threads,
        "speed_up": round(sequential / ray, 2),
        "same_r_matrices": same,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
