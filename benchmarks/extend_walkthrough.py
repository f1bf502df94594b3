"""The "new hospital" walkthrough of docs/training.md, measured: train on seven synthetic centers, extend with
the eighth (AMU) from its own dataset, for finetune and replay.

    .venv/bin/python benchmarks/extend_walkthrough.py [--out DIR] [--preset quick] [--seed 0] [--threads 1]

Prints, per strategy: AMU's Dice before the extension (the seven-center model, zero-shot) and after it, each
earlier center's Dice before and after, and the extension's own BWT (mean change of the earlier centers).
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
SEVEN = "[BWH,Karo,Milan,Rennes,NIH,Montp,UCSF]"
NEW = "AMU"


def run(*args: str) -> float:
    start = time.perf_counter()
    subprocess.run([*MSCL, *args], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/mscl-extend-walkthrough"))
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    out, uri = args.out.resolve(), f"sqlite:///{args.out.resolve()}/mlflow.db"
    run("prepare", "--synthetic", "--preset", args.preset, "--out", f"{out}/data", "--quiet", "--seed", "0")
    run("prepare", "--synthetic", "--preset", args.preset, "--centers", NEW, "--out", f"{out}/new", "--quiet")
    common = ["--tracking-uri", uri, "--quiet"]  # extend finds the study's experiment from its run
    client = MlflowClient(uri)
    results = {}
    for strategy in ("finetune", "replay"):
        trained = run(
            "train", "--data", f"{out}/data", "--preset", args.preset, "--strategy", strategy,
            "--seed-list", str(args.seed), "--threads", str(args.threads),
            "--set", f"protocol.centers={SEVEN}",
            "--memory-backend", "zarr", "--memory-path", f"{out}/memory-{strategy}",
            "--set", f"train.checkpoint_dir={out}/checkpoints", "--experiment", "walkthrough", *common,
        )  # fmt: skip
        exp = client.get_experiment_by_name("walkthrough")
        query = f"tags.`{tree.STRATEGY_TAG}` = '{strategy}' and tags.`{tree.SEED_TAG}` = '{args.seed}'"
        (parent,) = [
            r for r in client.search_runs([exp.experiment_id], query) if tree.STAGE_TAG not in r.data.tags
        ]
        before = load_r_matrix(client, parent.info.run_id)
        extended = run("extend", parent.info.run_id, "--data", f"{out}/new", *common)
        after = load_r_matrix(client, parent.info.run_id)
        children = client.search_runs(
            [exp.experiment_id], f"tags.`{tree.PARENT_TAG}` = '{parent.info.run_id}'"
        )
        stage = next(r for r in children if r.info.run_name.endswith(f"-{NEW}"))
        last_before, last_after = before.metrics["dice"].matrix[-1], after.metrics["dice"].matrix[-1]
        column = {center: i for i, center in enumerate(after.centers)}
        changes = {c: (last_before[i], last_after[column[c]]) for i, c in enumerate(before.centers)}
        deltas = [b - a for a, b in changes.values() if a is not None and b is not None]
        results[strategy] = {
            "train_s": round(trained, 1),
            "extend_s": round(extended, 1),
            f"{NEW}_before": stage.data.metrics.get(tree.before_key("dice", NEW)),
            f"{NEW}_after": last_after[column[NEW]],
            "earlier_before_after": changes,
            "extension_bwt": sum(deltas) / len(deltas),
        }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
