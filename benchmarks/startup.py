"""Start-up cost of the CLI, cold processes, median of N (issue #19's targets: `mscl --help` <= 0.3 s, the
first training epoch of a tiny study <= 3 s after the process starts).

    .venv/bin/python benchmarks/startup.py [--repeats 5] [--out DIR]

First epoch: `mscl train` on the blob test dataset (tiny preset, small model) against an existing sqlite store
(its one-time creation excluded); the time from launching the process to the end of the first epoch is read
from the first `train/loss` metric's MLflow timestamp. `python -c pass` is measured alongside, same run, and
so is the floor under the first epoch: cold processes that only import what any first epoch needs (torch and
its AdamW, which imports torch._dynamo; MONAI, whose UNet is the model and whose package init imports every
submodule; MLflow with the sqlite store opened), each alone and all together.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from mlflow.tracking import MlflowClient

from mscl.testing.data import build_blob_dataset
from mscl.tracking import tree

MSCL = [sys.executable, "-m", "mscl.cli.main"]
OPTIMIZER = "import torch; torch.optim.AdamW(torch.nn.Linear(2, 2).parameters())"
MLFLOW_STORE = "from mlflow.tracking import MlflowClient; MlflowClient({uri!r}).search_experiments()"
TINY = ["--preset", "tiny", "--set", "model.channels=[2,4,8]", "--set", "train.patch_size=[8,8,8]"]


def wall(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def python(code: str) -> float:
    """Wall seconds of a cold ``python -c code``."""
    return wall([sys.executable, "-c", code])


def first_epoch(data: Path, out: Path, run: int) -> float:
    """Seconds from launching `mscl train` to its first epoch's end (the MLflow timestamp of train/loss)."""
    uri = f"sqlite:///{out}/mlflow.db"
    experiment = f"startup{run}"
    launched = time.time()
    subprocess.run(
        [*MSCL, "train", "--data", str(data), "-s", "finetune", *TINY, "--epochs", "1", "--tracking-uri", uri,
         "--experiment", experiment, "--quiet", "--set", f"train.checkpoint_dir={out}/checkpoints"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    stages = client.search_runs([exp.experiment_id], f"tags.`{tree.STAGE_TAG}` = '1'")
    history = client.get_metric_history(stages[0].info.run_id, tree.train_key("loss"))
    return min(m.timestamp for m in history) / 1000 - launched


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("/tmp/mscl-startup"))
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    out = args.out.resolve()
    data = build_blob_dataset(out / "data")
    first_epoch(data, out, -1)  # creates the store (excluded, as the target says) and warms the file cache
    store = MLFLOW_STORE.format(uri=f"sqlite:///{out}/mlflow.db")
    floor = {
        "python -c pass": "pass",
        "floor: torch + AdamW": OPTIMIZER,
        "floor: import monai": "import monai",
        "floor: mlflow store": store,
        "floor: all three": f"{OPTIMIZER}; import monai; {store}",
    }
    figures = {
        **{name: [python(code) for _ in range(args.repeats)] for name, code in floor.items()},
        "mscl --help": [wall([*MSCL, "--help"]) for _ in range(args.repeats)],
        "mscl train --help": [wall([*MSCL, "train", "--help"]) for _ in range(args.repeats)],
        "first epoch": [first_epoch(data, out, i) for i in range(args.repeats)],
    }
    print(json.dumps({name: round(statistics.median(v), 3) for name, v in figures.items()}, indent=2))


if __name__ == "__main__":
    main()
