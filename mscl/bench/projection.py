"""Wall time of a full paper-preset replay run (one seed, every center) from measured throughput.

The counts come from the code, not from a table: subjects per center and contrasts from the synthetic
generator's center profiles (the paper's cohorts), the train/test split from :mod:`mscl.data.split`, the
domain order from :mod:`mscl.protocol.order`, epochs, patches and memory quota from the ``paper`` preset.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from mscl.config import ExperimentConfig, load_config
from mscl.data.split import n_test_subjects
from mscl.protocol.order import resolve_order


@dataclass(frozen=True)
class CenterCounts:
    """Cases of one center in the paper's cohort (one case per subject and contrast)."""

    name: str
    train_cases: int
    test_cases: int


@dataclass(frozen=True)
class Projection:
    """Projected wall time of one replay run; seconds are ``None`` where the rate is unknown."""

    centers: list[str]
    patches: int
    evaluations: int
    test_cases: int
    train_s: float
    eval_s: float | None
    total_s: float | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping."""
        return asdict(self)


def paper_counts(cfg: ExperimentConfig) -> list[CenterCounts]:
    """Train and test cases of every paper center, in ``cfg.protocol.order`` (descending by default)."""
    profiles = cfg.synthetic.centers
    subjects = {name: profile.paper_subjects for name, profile in profiles.items()}
    seed = cfg.protocol.order_seed if cfg.protocol.order_seed is not None else cfg.protocol.seeds[0]
    order = resolve_order(cfg.protocol.order, subjects, seed)
    counts = []
    for name in order:
        profile = profiles[name]
        test = n_test_subjects(profile.paper_subjects, cfg.data.test_fraction)
        contrasts = len(profile.contrasts)
        counts.append(CenterCounts(name, (profile.paper_subjects - test) * contrasts, test * contrasts))
    return counts


def replay_patches(train_cases: Sequence[int], quota: int, epochs: int, patches_per_case: int) -> int:
    """Patches drawn by a replay run: every stage trains on its center plus the memory of earlier ones.

    ``epochs * patches_per_case * sum_k (train_cases[k] + sum_{j<k} min(quota, train_cases[j]))``.
    """
    cases, memory = 0, 0
    for count in train_cases:
        cases += count + memory
        memory += min(quota, count)
    return epochs * patches_per_case * cases


def project_replay_run(
    patches_per_s: float, volumes_per_s: float | None, cfg: ExperimentConfig | None = None
) -> Projection:
    """Wall time of a replay run of ``cfg`` (default: the ``paper`` preset) at the measured rates.

    Training takes ``patches / patches_per_s``; evaluation scores every test case once before the first
    stage and after each stage (``centers + 1`` evaluations) at ``volumes_per_s``.
    """
    cfg = cfg or load_config("paper")
    counts = paper_counts(cfg)
    patches = replay_patches(
        [c.train_cases for c in counts],
        cfg.memory.per_center_quota,
        cfg.train.epochs,
        cfg.train.patches_per_case,
    )
    evaluations = len(counts) + 1
    test_cases = sum(c.test_cases for c in counts)
    train_s = patches / patches_per_s
    eval_s = evaluations * test_cases / volumes_per_s if volumes_per_s else None
    total_s = train_s + eval_s if eval_s is not None else None
    return Projection([c.name for c in counts], patches, evaluations, test_cases, train_s, eval_s, total_s)
