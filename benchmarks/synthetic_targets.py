"""Does the synthetic default forget like the real hospitals? The #17 targets, read from a finished study.

    mscl study --data data/quick --preset quick --strategies single,finetune,replay,joint,cumulative \
        --seeds 3 --orders 'descending;random' --experiment synthetic --tracking-uri sqlite:///study.db
    .venv/bin/python benchmarks/synthetic_targets.py --tracking-uri sqlite:///study.db --experiment synthetic

Reads every finished parent run (the R matrices of Dice) and prints, per order kind, mean +- std over seeds:

- fine-tuning mean BWT (target <= -0.05);
- the T2w-only center's drop under fine-tuning, ``R[stage(Milan), Milan] - R[K, Milan]``, over the seeds
  where it is not trained last (target >= 0.15);
- replay mean BWT (target >= 0) and replay BWT minus fine-tuning BWT, seed by seed (target >= 0.05);
- replay's final-row mean Dice against joint (multi-domain) training's (target: replay >= joint);
- every strategy's final-row mean Dice and BWT (single-domain: the mean of its diagonal, each center by its
  own model), and the per-center BWT of fine-tuning and replay in the descending order (Table 1's form);
- the single-domain models' cross-center matrix, and on how many centers a center's own model is the best;
- fine-tuning run by run: the center the order ends on, the run's BWT and Milan drop, and how well that last
  center's single-domain model does on the other centers, with the correlation of the two over the runs
  (what decides whether a random order forgets);
- with ``--shift-json`` (``mscl shift --json``), how well the shift check's proxy matrix predicts the
  single-domain models' cross-center Dice: Pearson and Spearman correlation over the (train, test) pairs of
  the single-contrast centers (all, off-diagonal, and the rows of models that learned their own center).

``--experiment`` may be given several times, e.g. the study's and one holding more seeds of a strategy.

A target missed is printed as MISSED; nothing is tuned here, the seeds are the study's.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from mscl.protocol.metrics import bwt, per_center_bwt
from mscl.tracking.queries import ParentRun, read_parent_runs

METRIC = "dice"
REFERENCE = ("single", "joint")
LEARNED_DICE = 0.3
"""A single-domain model whose own Dice is below this learned too little to say where it transfers."""
T2W_CENTER = "Milan"
PAPER_TABLE_1 = {
    "BWH": (-0.070, 0.005),
    "Karo": (-0.171, 0.037),
    "Milan": (-0.284, 0.001),
    "Rennes": (-0.083, -0.012),
    "NIH": (-0.119, -0.002),
    "Montp": (-0.061, 0.032),
    "UCSF": (-0.061, -0.008),
    "AMU": (0.0, 0.0),
}
"""The paper's per-center BWT (fine-tuning, replay), descending order, 9 seeds."""


def _r(run: ParentRun) -> np.ndarray:
    return run.rmatrix.metrics[METRIC].r


def _stat(values: list[float]) -> str:
    if not values:
        return "-"
    array = np.asarray(values, dtype=float)
    spread = f" +- {array.std(ddof=1):.3f}" if len(array) > 1 else ""
    return f"{array.mean():+.3f}{spread} (n={len(array)})"


def _verdict(values: list[float], passes: bool) -> str:
    return "" if not values else ("met" if passes else "MISSED")


def final_mean(run: ParentRun) -> float:
    """Mean Dice of the last row over every center; for single-domain runs the mean of the diagonal."""
    r = _r(run)
    if run.strategy == "single":
        columns = [run.rmatrix.centers.index(center) for center in run.rmatrix.order]
        return float(np.nanmean(r[np.arange(len(columns)), columns]))
    return float(np.nanmean(r[-1]))


def single_matrix(runs: list[ParentRun]) -> tuple[list[str], np.ndarray]:
    """The single-domain models' mean cross-center Dice over seeds: rows trained on, columns tested on."""
    centers = runs[0].rmatrix.centers
    stacked = []
    for run in runs:
        rows = [run.rmatrix.order.index(center) for center in centers]
        stacked.append(_r(run)[rows][:, [run.rmatrix.centers.index(c) for c in centers]])
    return centers, np.nanmean(stacked, axis=0)


def transfer(centers: list[str], trained: np.ndarray) -> dict[str, float]:
    """Each center's single-domain model: its mean Dice on the other centers (its row off the diagonal)."""
    off = ~np.eye(len(centers), dtype=bool)
    return {center: float(np.nanmean(trained[i][off[i]])) for i, center in enumerate(centers)}


def print_single_matrix(
    centers: list[str], trained: np.ndarray, elsewhere: dict[str, float], seeds: int
) -> None:
    """The single-domain matrix, each row's transfer, and the centers where the own model is the best."""
    print(f"\nsingle-domain models, mean Dice over {seeds} seeds (rows trained on, columns tested on):")
    print(" " * 8 + "".join(f"{c:>8}" for c in centers) + "  on the others")
    for center, row in zip(centers, trained, strict=True):
        print(f"{center:<8}" + "".join(f"{v:>8.2f}" for v in row) + f"  {elsewhere[center]:>13.2f}")
    best = [c for i, c in enumerate(centers) if np.nanargmax(trained[:, i]) == i]
    print(f"own model the best on its center: {len(best)} of {len(centers)} ({', '.join(best) or 'none'})")


def proxy_correlation(centers: list[str], trained: np.ndarray, seeds: int, shift_json: Path) -> None:
    """Pearson and Spearman correlation of the shift check's matrix with the single-domain models'."""
    from scipy.stats import pearsonr, spearmanr

    proxy = json.loads(shift_json.read_text())
    names = [c for c in centers if c in proxy["domains"]]  # single-contrast centers: domain = center
    index = [proxy["domains"].index(c) for c in names]
    proxy_dice = np.array(proxy["dice"], dtype=float)[np.ix_(index, index)]
    model_dice = trained[np.ix_([centers.index(c) for c in names], [centers.index(c) for c in names])]
    pairs = ~np.isnan(proxy_dice) & ~np.isnan(model_dice)
    off = pairs & ~np.eye(len(names), dtype=bool)
    learned = pairs & (np.diag(model_dice) >= LEARNED_DICE)[:, None]
    print(f"\nshift check vs single-domain models ({seeds} seeds), centers {', '.join(names)}:")
    for label, mask in (
        ("all pairs", pairs),
        ("off-diagonal pairs", off),
        (f"rows own >= {LEARNED_DICE}", learned),
    ):
        x, y = proxy_dice[mask], model_dice[mask]
        print(
            f"{label:<20} n={mask.sum():<3} Pearson r={pearsonr(x, y)[0]:+.2f}  "
            f"Spearman rho={spearmanr(x, y)[0]:+.2f}"
        )


def run_bwt(run: ParentRun) -> float:
    """Mean BWT of a sequential run."""
    return bwt(_r(run), run.rmatrix.order, run.rmatrix.centers)


def t2w_drop(run: ParentRun) -> float | None:
    """Milan's Dice after its own stage minus after the last stage; None when Milan is trained last."""
    order, centers = run.rmatrix.order, run.rmatrix.centers
    if T2W_CENTER not in order or order.index(T2W_CENTER) == len(order) - 1:
        return None
    r = _r(run)
    column = centers.index(T2W_CENTER)
    return float(r[order.index(T2W_CENTER), column] - r[-1, column])


def order_ends(finetune: list[ParentRun], elsewhere: dict[str, float]) -> None:
    """Fine-tuning run by run: last center, BWT, Milan drop and the last center's single-domain transfer."""
    from scipy.stats import pearsonr

    print("\nfine-tuning run by run (last center elsewhere: its single-domain model on the other centers):")
    print(f"{'seed':>4}  {'ends on':<8} {'BWT':>7} {'Milan drop':>10} {'last center elsewhere':>22}")
    pairs = []
    for run in sorted(finetune, key=lambda r: r.seed):
        last, value, drop = run.rmatrix.order[-1], run_bwt(run), t2w_drop(run)
        shown_drop = "-" if drop is None else f"{drop:+.3f}"
        shown_transfer = f"{elsewhere[last]:.2f}" if last in elsewhere else "-"
        print(f"{run.seed:>4}  {last:<8} {value:>+7.3f} {shown_drop:>10} {shown_transfer:>22}")
        if last in elsewhere:
            pairs.append((elsewhere[last], value))
    x, y = np.array(pairs).reshape(-1, 2).T
    if len(pairs) > 2 and np.ptp(x) > 0:  # undefined where every run ends on the same center
        print(f"Pearson r(last center elsewhere, BWT) = {pearsonr(x, y)[0]:+.2f} over {len(pairs)} runs")


def report(runs: list[ParentRun], shift_json: Path | None = None) -> None:
    """Print the targets and the per-strategy table for each order kind."""
    by_kind: dict[str, dict[str, list[ParentRun]]] = defaultdict(lambda: defaultdict(list))
    reference: dict[str, list[ParentRun]] = defaultdict(list)
    for run in runs:  # single-domain and joint runs do not depend on the order: shown under every kind
        (
            reference[run.strategy] if run.strategy in REFERENCE else by_kind[run.order_kind][run.strategy]
        ).append(run)
    elsewhere: dict[str, float] = {}
    if reference.get("single"):
        centers, trained = single_matrix(reference["single"])
        seeds = len(reference["single"])
        elsewhere = transfer(centers, trained)
        print_single_matrix(centers, trained, elsewhere, seeds)
        if shift_json is not None:
            proxy_correlation(centers, trained, seeds, shift_json)
    for kind, groups in sorted(by_kind.items()):
        print(f"\n== order: {kind} ==")
        finetune, replay = groups.get("finetune", []), groups.get("replay", [])
        ft_bwt = [run_bwt(r) for r in finetune]
        drops = [d for d in (t2w_drop(r) for r in finetune) if d is not None]
        rp_bwt = [run_bwt(r) for r in replay]
        ft_by_seed = {r.seed: run_bwt(r) for r in finetune}
        gain = [run_bwt(r) - ft_by_seed[r.seed] for r in replay if r.seed in ft_by_seed]
        replay_final = [final_mean(r) for r in replay]
        joint_final = [final_mean(r) for r in reference.get("joint", [])]
        rows = [
            ("fine-tuning mean BWT <= -0.05", ft_bwt, bool(ft_bwt and np.mean(ft_bwt) <= -0.05)),
            (f"{T2W_CENTER} drop under fine-tuning >= 0.15", drops, bool(drops and np.mean(drops) >= 0.15)),
            ("replay mean BWT >= 0", rp_bwt, bool(rp_bwt and np.mean(rp_bwt) >= 0)),
            ("replay BWT - fine-tuning BWT >= 0.05", gain, bool(gain and np.mean(gain) >= 0.05)),
            ("replay final-row mean Dice", replay_final, True),
            ("joint final-row mean Dice", joint_final, True),
        ]
        for name, values, passes in rows:
            print(f"{name:<45} {_stat(values):<28} {_verdict(values, passes)}")
        if replay_final and joint_final:
            verdict = "met" if np.mean(replay_final) >= np.mean(joint_final) else "MISSED"
            print(f"{'replay final-row mean >= joint':<45} {'':<28} {verdict}")
        print(f"\n{'strategy':<12} {'final-row mean Dice':<28} {'mean BWT':<28}")
        for strategy, members in sorted({**groups, **reference}.items()):
            sequential = strategy not in ("joint", "single")
            bwts = [run_bwt(r) for r in members] if sequential else []
            print(f"{strategy:<12} {_stat([final_mean(r) for r in members]):<28} {_stat(bwts):<28}")
        if kind == "descending" and finetune and replay:
            print("\nper-center BWT, descending order (paper Table 1: fine-tuning, replay; 9 seeds, real)")
            print(f"{'center':<8} {'fine-tuning':<28} {'replay':<28} {'paper ft':>9} {'paper rp':>9}")
            for center in finetune[0].rmatrix.order:
                cells = [
                    _stat([per_center_bwt(_r(r), r.rmatrix.order, r.rmatrix.centers)[center] for r in group])
                    for group in (finetune, replay)
                ]
                paper = PAPER_TABLE_1.get(center, (float("nan"), float("nan")))
                print(f"{center:<8} {cells[0]:<28} {cells[1]:<28} {paper[0]:>+9.3f} {paper[1]:>+9.3f}")
        if finetune:
            order_ends(finetune, elsewhere)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", required=True)
    parser.add_argument(
        "--experiment", required=True, action="append", help="an experiment of the study (repeatable)"
    )
    parser.add_argument("--shift-json", type=Path, help="mscl shift --json output of the study's dataset")
    args = parser.parse_args()
    from mlflow.tracking import MlflowClient

    client = MlflowClient(args.tracking_uri)
    runs: list[ParentRun] = []
    for experiment in args.experiment:
        read = read_parent_runs(client, experiment)
        for skipped in read.skipped:
            print(f"skipped {skipped.name}: {skipped.reason}")
        runs.extend(read.runs)
    report(runs, args.shift_json)


if __name__ == "__main__":
    main()
