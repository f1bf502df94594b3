"""The domain-shift check: how well a cheap segmenter fitted on one domain does on every other.

A domain is a (center, contrast) pair. The proxy segmenter is a lookup table over two voxel features, the
voxel's intensity and the Gaussian-smoothed intensity of its brain neighbourhood (sigma :data:`SIGMA`
voxels), each clipped to a fixed range and cut into :data:`BINS` bins. Fitted on a domain's training cases
it holds ``P(lesion | bin)`` (smoothed counts of ``label >= 0.5`` among brain voxels) and the posterior
threshold with the best mean per-case Dice on those cases; it is then scored on every domain's test cases
(mean per-case Dice, 1 when mask and label are both empty). No network is trained: the whole check reads
each case once and works on per-case 2D histograms, so it takes seconds.

Brain voxels are those above the volume's minimum: preprocessing z-scores the whole cropped volume with
the statistics of its foreground, so a skull-stripped background becomes one constant, the minimum.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from mscl.data.dataset import PreparedDataset
from mscl.data.manifest import DatasetManifest
from mscl.data.writer import temporary_sibling
from mscl.errors import DataError

BINS = 48
"""Bins per feature: the table has ``BINS * BINS`` cells."""
SIGMA = 2.0
"""Gaussian sigma of the neighbourhood feature, in voxels."""
ZSCORE_RANGE = (-3.0, 8.0)
"""Feature range of z-scored (and unnormalised) datasets; values outside are clipped to its ends."""
PERCENTILE_RANGE = (0.0, 1.0)
"""Feature range of datasets normalised with ``percentile`` (intensities in [0, 1])."""
TABLE_SMOOTHING = 1.0
"""Gaussian sigma, in bins, applied to the count tables: nearby intensities share evidence."""
PSEUDO_COUNT = 1.0
"""Voxels of prior (the source's lesion fraction) added to every cell of the table."""
PROXY = (
    f"lookup-table voxel classifier: P(lesion | intensity, neighbourhood intensity (Gaussian sigma "
    f"{SIGMA:g} voxels)) on a {BINS}x{BINS} grid, threshold fitted for mean per-case Dice"
)


@dataclass(frozen=True)
class Domain:
    """A (center, contrast) pair; ``name`` is the center alone when the center has one contrast."""

    name: str
    center: str
    contrast: str


def domains_of(manifest: DatasetManifest) -> list[Domain]:
    """Every (center, contrast) of the manifest's center records, in manifest order."""
    return [
        Domain(
            center.name if len(center.contrasts) == 1 else f"{center.name} {contrast}", center.name, contrast
        )
        for center in manifest.centers
        for contrast in center.contrasts
    ]


def feature_range(manifest: DatasetManifest) -> tuple[float, float]:
    """The fixed feature range of a dataset: [0, 1] for ``percentile`` normalisation, else z-units."""
    if manifest.preprocessing.intensity_normalization.startswith("percentile"):
        return PERCENTILE_RANGE
    return ZSCORE_RANGE


def brain_mask(image: np.ndarray) -> np.ndarray:
    """Voxels above the volume's minimum (the constant background of a skull-stripped, normalised scan)."""
    return image > image.min()


@dataclass(frozen=True)
class CaseCounts:
    """One case as the lookup table sees it: voxel counts per table cell, split by the label."""

    lesion: np.ndarray
    """Brain voxels with ``label >= 0.5`` per cell (``BINS * BINS`` int64)."""
    other: np.ndarray
    """Brain voxels with ``label < 0.5`` per cell."""
    missed: int
    """Voxels with ``label >= 0.5`` outside the brain: never predicted, counted against Dice."""

    @property
    def lesion_voxels(self) -> int:
        """All voxels with ``label >= 0.5``."""
        return int(self.lesion.sum()) + self.missed


def cell_index(image: np.ndarray, brain: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    """The table cell of every brain voxel (flat index: intensity bin * BINS + neighbourhood bin)."""
    low, high = value_range
    weight = brain.astype(np.float32)
    # normalised convolution: the neighbourhood mean over brain voxels only, so edges see no background
    smoothed = ndimage.gaussian_filter(image * weight, SIGMA) / np.maximum(
        ndimage.gaussian_filter(weight, SIGMA), 1e-6
    )

    def bins(values: np.ndarray) -> np.ndarray:
        scaled = (np.clip(values, low, high) - low) * (BINS / (high - low))
        return np.minimum(scaled.astype(np.int64), BINS - 1)

    return bins(image[brain]) * BINS + bins(smoothed[brain])


def case_counts(image: np.ndarray, label: np.ndarray, value_range: tuple[float, float]) -> CaseCounts:
    """Per-cell counts of one case's brain voxels, lesion (``label >= 0.5``) and other."""
    image = image.astype(np.float32)
    brain = brain_mask(image)
    lesion = label >= 0.5
    cells = cell_index(image, brain, value_range)
    inside = lesion[brain]
    return CaseCounts(
        lesion=np.bincount(cells[inside], minlength=BINS * BINS),
        other=np.bincount(cells[~inside], minlength=BINS * BINS),
        missed=int((lesion & ~brain).sum()),
    )


def case_dice(selected: np.ndarray, counts: CaseCounts) -> float:
    """Dice of the cells ``selected`` (boolean per cell) against ``label >= 0.5`` (1 when both empty)."""
    true_pos = float(counts.lesion[selected].sum())
    denominator = true_pos + float(counts.other[selected].sum()) + counts.lesion_voxels
    return 2.0 * true_pos / denominator if denominator > 0 else 1.0


@dataclass(frozen=True)
class LookupClassifier:
    """``P(lesion | cell)`` and the threshold at or above which a cell is called lesion."""

    posterior: np.ndarray
    threshold: float
    train_dice: float
    """Mean per-case Dice on the cases it was fitted on."""

    def selected(self) -> np.ndarray:
        """The cells called lesion."""
        return self.posterior >= self.threshold

    def mean_dice(self, cases: Sequence[CaseCounts]) -> float:
        """Mean per-case Dice over ``cases`` (NaN when there are none)."""
        selected = self.selected()
        return float(np.mean([case_dice(selected, case) for case in cases])) if cases else math.nan


def fit_posterior(cases: Sequence[CaseCounts]) -> np.ndarray:
    """``P(lesion | cell)`` from the counts of ``cases``, smoothed over the grid and towards their
    lesion fraction."""
    lesion = np.sum([case.lesion for case in cases], axis=0).astype(np.float64)
    total = lesion + np.sum([case.other for case in cases], axis=0)
    prior = lesion.sum() / max(total.sum(), 1.0)

    def smooth(grid: np.ndarray) -> np.ndarray:
        return ndimage.gaussian_filter(grid.reshape(BINS, BINS), TABLE_SMOOTHING, mode="nearest").ravel()

    return (smooth(lesion) + PSEUDO_COUNT * prior) / (smooth(total) + PSEUDO_COUNT)


def fit_classifier(cases: Sequence[CaseCounts]) -> LookupClassifier:
    """The table of ``cases`` and the posterior threshold with the best mean per-case Dice on them.

    Candidates are every distinct posterior (cells at or above it are lesion) and 1.0 (nothing is
    lesion); the highest threshold wins a tie.
    """
    posterior = fit_posterior(cases)
    order = np.argsort(-posterior, kind="stable")
    ranked = posterior[order]
    ends = np.flatnonzero(np.append(ranked[1:] != ranked[:-1], True))  # last cell of each equal posterior
    lesion = np.stack([case.lesion[order] for case in cases]).cumsum(axis=1)[:, ends]
    other = np.stack([case.other[order] for case in cases]).cumsum(axis=1)[:, ends]
    truth = np.array([[case.lesion_voxels] for case in cases], dtype=np.float64)
    denominator = lesion + other + truth
    dice = np.where(denominator > 0, 2.0 * lesion / np.maximum(denominator, 1), 1.0)
    empty = np.where(truth[:, 0] > 0, 0.0, 1.0)  # nothing predicted
    mean = np.concatenate([[empty.mean()], dice.mean(axis=0)])
    best = int(np.argmax(mean))
    threshold = 1.0 if best == 0 else float(ranked[ends[best - 1]])
    return LookupClassifier(posterior, threshold, float(mean[best]))


@dataclass
class ShiftMatrix:
    """Dice of the proxy fitted on each source domain (rows) and scored on each target domain (columns).

    A source without training cases has a NaN row; a target without test cases a NaN column.
    """

    dataset: str
    domains: list[str]
    dice: np.ndarray
    train_cases: list[int]
    test_cases: list[int]
    thresholds: list[float]
    """The posterior threshold fitted on each source (NaN without training cases)."""
    train_dice: list[float]
    """Each source's mean per-case Dice on its own training cases."""
    value_range: tuple[float, float]
    proxy: str = PROXY

    def in_domain(self) -> np.ndarray:
        """The diagonal: each source scored on its own test cases."""
        return np.diag(self.dice).copy()

    def from_others(self) -> np.ndarray:
        """For each target domain, the mean Dice of the other domains' classifiers on its test cases (NaN
        where none has a value)."""
        means = []
        for column, values in enumerate(self.dice.T):
            others = np.delete(values, column)
            others = others[~np.isnan(others)]
            means.append(float(others.mean()) if others.size else math.nan)
        return np.array(means)

    def gap(self) -> np.ndarray:
        """Own minus others' Dice on each domain: what a model from elsewhere loses there. Per target, so a
        domain that is hard for every classifier (low diagonal) does not read as a small shift."""
        return self.in_domain() - self.from_others()

    def header(self) -> list[str]:
        """The column names of :meth:`rows`: the source column, then every target domain."""
        return ["train \\ test", *self.domains]

    def rows(self) -> list[list[str]]:
        """One row of text per source domain: its name and the Dice on every target (``-``: no value)."""
        return [[name, *map(_cell, values)] for name, values in zip(self.domains, self.dice, strict=True)]

    def summary_header(self) -> list[str]:
        """The column names of :meth:`summary_rows`."""
        return ["domain", "train/test", "own", "others'", "gap"]

    def summary_rows(self) -> list[list[str]]:
        """One row of text per domain: its training/test cases, the Dice of its own classifier and of the
        others' on its test cases, and the gap."""
        summary = np.stack([self.in_domain(), self.from_others(), self.gap()], axis=1)
        return [
            [name, f"{train}/{test}", *map(_cell, values)]
            for name, train, test, values in zip(
                self.domains, self.train_cases, self.test_cases, summary, strict=True
            )
        ]

    def to_dict(self) -> dict[str, object]:
        """The JSON form: plain lists, ``null`` for NaN."""
        return {
            "proxy": self.proxy,
            "metric": "mean per-case Dice against label >= 0.5 (1 when both are empty)",
            "rows": "source domain: the proxy is fitted on its training cases",
            "columns": "target domain: the proxy is scored on its test cases",
            "dataset": self.dataset,
            "domains": self.domains,
            "train_cases": self.train_cases,
            "test_cases": self.test_cases,
            "dice": [_json_values(row) for row in self.dice],
            "in_domain": _json_values(self.in_domain()),
            "from_others": _json_values(self.from_others()),
            "gap": _json_values(self.gap()),
            "thresholds": _json_values(self.thresholds),
            "train_dice": _json_values(self.train_dice),
            "settings": {
                "bins": BINS,
                "range": list(self.value_range),
                "sigma_voxels": SIGMA,
                "table_smoothing_bins": TABLE_SMOOTHING,
                "pseudo_count": PSEUDO_COUNT,
            },
        }

    def write_json(self, path: Path) -> Path:
        """Write :meth:`to_dict` to ``path`` atomically (a temporary sibling renamed into place).

        Raises:
            DataError: the file cannot be written.
        """
        path = Path(path)
        tmp = temporary_sibling(path)
        try:
            tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
            os.replace(tmp, path)
        except OSError as exc:
            raise DataError(f"{path}: cannot write ({exc.strerror or exc})") from None
        finally:
            tmp.unlink(missing_ok=True)
        return path


def _cell(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2f}"


def _json_values(values: Sequence[float] | np.ndarray) -> list[float | None]:
    return [None if math.isnan(v) else round(float(v), 4) for v in values]


def shift_matrix(directory: Path, on_case: Callable[[], None] | None = None) -> ShiftMatrix:
    """The shift matrix of a prepared dataset directory (real or synthetic).

    Args:
        directory: A dataset directory written by ``mscl prepare``.
        on_case: Called after each case is read (a progress bar's advance).

    Raises:
        DataError: the directory is missing or not a dataset, a case fails its checksum, or a case's
            (center, contrast) is not among the manifest's centers.
    """
    with PreparedDataset(directory) as dataset:
        manifest = dataset.manifest
        domains = domains_of(manifest)
        value_range = feature_range(manifest)
        index = {(domain.center, domain.contrast): i for i, domain in enumerate(domains)}
        train: list[list[CaseCounts]] = [[] for _ in domains]
        test: list[list[CaseCounts]] = [[] for _ in domains]
        for record in manifest.cases:
            where = index.get((record.center, record.contrast))
            if where is None:
                raise DataError(
                    f"{directory}: case {record.id!r} is {record.contrast} of center {record.center!r}, "
                    "which the manifest's centers do not list"
                )
            image, label = dataset.load(record.id)
            (train if record.split == "train" else test)[where].append(case_counts(image, label, value_range))
            if on_case is not None:
                on_case()
    classifiers = [fit_classifier(cases) if cases else None for cases in train]
    dice = np.array(
        [[math.nan if model is None else model.mean_dice(cases) for cases in test] for model in classifiers]
    ).reshape(len(domains), len(domains))
    return ShiftMatrix(
        dataset=manifest.name,
        domains=[domain.name for domain in domains],
        dice=dice,
        train_cases=[len(cases) for cases in train],
        test_cases=[len(cases) for cases in test],
        thresholds=[math.nan if model is None else model.threshold for model in classifiers],
        train_dice=[math.nan if model is None else model.train_dice for model in classifiers],
        value_range=value_range,
    )
