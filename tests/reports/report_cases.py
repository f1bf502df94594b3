"""R matrices with known continual metrics, and a tracking store helper, shared by the report tests.

Every study has two metrics: ``dice`` (the headline) and ``volume_diff_ml`` (lower is better, in ml,
unbounded above), its matrix derived from the Dice one as ``20 - 10 * Dice``. So the volume's sign-aware
BWT, FWT and forgetting are exactly 10 times the Dice ones, its ACC and every raw cell ``20 - 10 * x``.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from mlflow.entities import Metric, RunTag
from mlflow.tracking import MlflowClient

from mscl.protocol.kinds import RMatrixKind
from mscl.tracking.queries import ParentRun
from mscl.tracking.rmatrix import MetricMatrix, RMatrix, log_r_matrix

# PROTOCOL.md, Table 1: per-center BWT in the fixed descending order, mean over 9 seeds.
DESCENDING = ["BWH", "Karo", "Milan", "Rennes", "NIH", "Montp", "UCSF", "AMU"]
CANONICAL = sorted(DESCENDING)
TABLE1 = {
    "finetune": [-0.070, -0.171, -0.284, -0.083, -0.119, -0.061, -0.061, 0.0],
    "replay": [0.005, 0.037, 0.001, -0.012, -0.002, 0.032, -0.008, 0.0],
}
SEEDS = range(9)
VOLUME = "volume_diff_ml"
SIGNED_SCALE = {"dice": 1.0, VOLUME: 10.0}
"""Sign-aware BWT, FWT and forgetting of each metric, as a multiple of the Dice ones."""
RAW: dict[str, Callable[[float], float]] = {"dice": lambda x: x, VOLUME: lambda x: 20.0 - 10.0 * x}
"""Each metric's raw score (a cell, ACC, a zero-shot mean) from the Dice one."""
_names = itertools.count()


def volume(rows: Sequence[Sequence[float]]) -> list[list[float]]:
    """The volume difference (ml) paired with Dice ``rows``: ``20 - 10 * Dice``."""
    return [[RAW[VOLUME](v) for v in row] for row in rows]


def rmatrix(
    strategy: str,
    seed: int,
    order: Sequence[str],
    centers: Sequence[str],
    dice: Sequence[Sequence[float]],
    baseline: Sequence[float] | None = None,
    kind: RMatrixKind = "continual",
    with_volume: bool = True,
) -> RMatrix:
    """A format-2 R matrix with Dice ``dice`` and, unless ``with_volume`` is False, its volume difference."""
    metrics = {"dice": MetricMatrix(matrix=[list(row) for row in dice], baseline=baseline)}
    if with_volume:
        metrics[VOLUME] = MetricMatrix(
            higher_is_better=False,
            bounds=(0.0, None),
            matrix=volume(dice),
            baseline=None if baseline is None else volume([baseline])[0],
        )
    return RMatrix(
        strategy=strategy, kind=kind, seed=seed, order=list(order), centers=list(centers), metrics=metrics
    )


def perturbation(seed: int) -> float:
    """Known per-seed offsets summing to zero over SEEDS: (seed - 4) / 1000."""
    return (seed - 4) / 1000


def bwt_matrix(
    bwt: Sequence[float], order: Sequence[str], centers: Sequence[str], offset: float = 0.0
) -> list[list[float]]:
    """An R matrix (rows = stages of ``order``, columns = ``centers``) whose per-center BWT is ``bwt``.

    Center ``order[i]`` scores ``0.5 + 0.01 * i`` right after its stage and that plus its BWT (plus
    ``offset`` for all but the last center) at the end; every other cell is 0.3.
    """
    k = len(order)
    r = np.full((k, len(centers)), 0.3)
    for i, center in enumerate(order):
        j = list(centers).index(center)
        r[i, j] = 0.5 + 0.01 * i
        if i < k - 1:
            r[k - 1, j] = r[i, j] + bwt[i] + offset
    return r.tolist()


def parent(rmatrix: RMatrix, order_kind: str = "descending", metrics: dict | None = None) -> ParentRun:
    """A ParentRun without MLflow, for compile tests."""
    name = f"{rmatrix.strategy}-seed{rmatrix.seed}"
    return ParentRun(f"id-{next(_names)}", name, order_kind, rmatrix, metrics or {})


@dataclass
class Store:
    """An sqlite tracking store in a temporary directory."""

    uri: str
    client: MlflowClient
    root: Path

    def experiment(self) -> tuple[str, str]:
        """A fresh experiment (name, id) with its artifacts under the store's directory."""
        name = f"exp{next(_names)}"
        return name, self.client.create_experiment(name, artifact_location=str(self.root / name))

    def log(
        self,
        experiment_id: str,
        rmatrix: RMatrix,
        order_kind: str = "descending",
        metrics: dict[str, float] | None = None,
        finish: bool = True,
        format_1: bool = False,
    ) -> str:
        """Log a parent run the way training does (tags, r_matrix.json, metrics); return its id.

        ``format_1``: write ``r_matrix.json`` as an older mscl did, Dice only (see :func:`format_1_json`).
        """
        tags = {
            "mscl.strategy": rmatrix.strategy,
            "mscl.seed": str(rmatrix.seed),
            "mscl.order": ",".join(rmatrix.order),
            "mscl.order_kind": order_kind,
        }
        run_id = self.client.create_run(
            experiment_id, run_name=f"{rmatrix.strategy}-seed{rmatrix.seed}"
        ).info.run_id
        batch = [Metric(k, v, 0, 0) for k, v in (metrics or {}).items()]
        self.client.log_batch(run_id, metrics=batch, tags=[RunTag(k, v) for k, v in tags.items()])
        if format_1:
            self.client.log_text(run_id, format_1_json(rmatrix), "r_matrix.json")
        else:
            log_r_matrix(self.client, run_id, rmatrix)
        if finish:
            self.client.set_terminated(run_id)
        return run_id


def format_1_json(rmatrix: RMatrix) -> str:
    """``rmatrix``'s Dice as a format 1 ``r_matrix.json`` (no ``format``, one top-level ``matrix``)."""
    dice = rmatrix.metric("dice")
    legacy = rmatrix.model_dump(include={"strategy", "kind", "seed", "order", "centers"})
    legacy |= {"metric": "dice@0.5", "matrix": dice.matrix, "baseline": dice.baseline}
    return json.dumps(legacy)


def table1_runs(strategy: str, with_volume: bool = True) -> list[RMatrix]:
    """Nine seeds of ``strategy`` whose per-center Dice BWT averages exactly to Table 1."""
    return [
        rmatrix(
            strategy,
            seed,
            DESCENDING,
            CANONICAL,
            bwt_matrix(TABLE1[strategy], DESCENDING, CANONICAL, perturbation(seed)),
            baseline=[0.1] * 8,
            with_volume=with_volume,
        )
        for seed in SEEDS
    ]
