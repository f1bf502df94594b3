"""Does one stage fit its center? Train a center alone and count what the model marks on its own cases.

    .venv/bin/python benchmarks/stage_fit.py --data data/quick --center Karo [--preset quick]
        [--epochs 40] [--seed 0] [--threads 1] [--train-cases 3] [--set KEY=VALUE ...]

One model is trained from scratch on the center's training cases, exactly as a first stage of
``mscl train`` trains it (the preset's ``train`` and ``model`` settings, ``--set`` on top), then every test
case and the first ``--train-cases`` training cases are segmented by the evaluation's sliding windows.
Printed per case: Dice (prediction and label at ``eval.threshold``), the label's voxels, the predicted ones,
true and false positives and false negatives. A stage that fits marks about as many voxels as its label
has, on its training cases first; one that marks a quarter of them under-segments, one that marks ten
times as many has not learnt the background. Compare heads with ``--set model.activation=normrelu`` and
``--set model.activation=sigmoid``. Deterministic on CPU: the same arguments give the same counts.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from mscl.config import load_config
from mscl.data.dataset import PreparedDataset
from mscl.engine.cache import CaseCache
from mscl.engine.inference import predict_volume
from mscl.engine.trainer import train_stage
from mscl.models.unet import build_model

Case = tuple[str, np.ndarray, np.ndarray]


def load_cases(dataset: PreparedDataset, center: str, split: str) -> list[Case]:
    """The center's cases of one split as float32 arrays."""
    cases = []
    for record in dataset.manifest.cases_of(center, split):  # type: ignore[arg-type]
        image, label = dataset.load(record.id)
        cases.append((record.id, np.asarray(image, np.float32), np.asarray(label, np.float32)))
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--center", required=True)
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--epochs", type=int, help="default: the preset's train.epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--train-cases", type=int, default=3, help="training cases to segment as well")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    cfg = load_config(args.preset, overrides=args.overrides)
    epochs = args.epochs or cfg.train.epochs
    with PreparedDataset(args.data) as dataset:
        train = load_cases(dataset, args.center, "train")
        test = load_cases(dataset, args.center, "test")
    if not train:
        raise SystemExit(f"{args.center}: no training cases in {args.data}")
    ids, images, labels = zip(*train, strict=True)
    cache = CaseCache.from_arrays(images, labels, "cpu", case_ids=ids)
    model = build_model(cfg.model, seed=args.seed)
    started = time.perf_counter()
    train_stage(model, cache, cfg.train, epochs=epochs, seed=args.seed)
    print(
        f"{args.center}: {len(train)} training and {len(test)} test cases, {epochs} epochs, "
        f"head {cfg.model.activation}, {cfg.train.min_cases_per_epoch} cases an epoch at least, "
        f"{time.perf_counter() - started:.0f} s"
    )
    print(f"{'split':5s} {'case':24s} {'dice':>5s} {'label':>6s} {'marked':>6s} {'tp':>5s} {'fp':>5s} fn")
    cut = cfg.eval.threshold
    window = (cfg.train.patch_size, cfg.eval.overlap, cfg.eval.window_batch, torch.device("cpu"))
    for split, cases in (("train", train[: args.train_cases]), ("test", test)):
        for case_id, image, label in cases:
            soft = predict_volume(model, image, *window)
            marked, lesion = soft >= cut, label >= cut
            tp, fp, fn = (int(m.sum()) for m in (marked & lesion, marked & ~lesion, ~marked & lesion))
            dice = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0
            print(
                f"{split:5s} {case_id:24s} {dice:5.2f} {int(lesion.sum()):6d} {int(marked.sum()):6d} "
                f"{tp:5d} {fp:5d} {fn}"
            )


if __name__ == "__main__":
    main()
