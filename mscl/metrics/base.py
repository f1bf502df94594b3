"""The metric contract: a metric scores one case from the soft prediction, the label and the voxel spacing.

Evaluation predicts a case once and hands every configured metric the same :class:`ScoredCase`, whose binary
masks and lesion matching are computed once, on first use, and shared by all metrics.

A metric declares its ``bounds``, whether higher is better (continual metrics such as BWT are then
sign-aware: positive always means better), its unit and its ``empty_policy``: the documented score of a case
whose label or prediction is empty. ``NaN`` means "undefined for this case" and is left out of a center's
mean (``np.nanmean``); a center whose every case is undefined gets a missing score.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from mscl.config import EvalConfig

if TYPE_CHECKING:
    from mscl.metrics.lesions import LesionMatch


class ScoredCase:
    """One case to score, with the views every metric shares computed once.

    Args:
        prediction: the soft prediction in ``[0, 1]``, ``(D, H, W)``.
        label: the (possibly soft) label, same shape.
        spacing: voxel spacing in mm, one value per axis.
        cfg: the evaluation settings (threshold, lesion rules).
    """

    def __init__(
        self, prediction: np.ndarray, label: np.ndarray, spacing: Sequence[float], cfg: EvalConfig
    ) -> None:
        if tuple(prediction.shape) != tuple(label.shape):
            raise ValueError(
                f"prediction shape {tuple(prediction.shape)} != label shape {tuple(label.shape)}"
            )
        if len(spacing) != prediction.ndim:
            raise ValueError(f"spacing {tuple(spacing)} does not match a {prediction.ndim}-D volume")
        self.prediction, self.label = prediction, label
        self.spacing = tuple(float(s) for s in spacing)
        self.cfg = cfg

    @cached_property
    def pred_mask(self) -> np.ndarray:
        """``prediction >= eval.threshold``."""
        return np.asarray(self.prediction) >= self.cfg.threshold

    @cached_property
    def label_mask(self) -> np.ndarray:
        """``label >= eval.threshold`` (a soft label counts its voxels of at least 50 % lesion)."""
        return np.asarray(self.label) >= self.cfg.threshold

    @property
    def voxel_ml(self) -> float:
        """Volume of one voxel in millilitres."""
        return float(np.prod(self.spacing)) / 1000.0

    @cached_property
    def lesions(self) -> LesionMatch:
        """Connected lesions of label and prediction, matched by overlap (see :mod:`mscl.metrics.lesions`)."""
        from mscl.metrics.lesions import match_lesions

        return match_lesions(self.pred_mask, self.label_mask, self.spacing, self.cfg)


class Metric(ABC):
    """Scores one case; registered under the entry-point group ``mscl.metrics``.

    Subclasses set the class attributes and implement :meth:`score`. One instance is built per evaluation
    from the evaluation settings, so a metric may read any ``eval.*`` knob.
    """

    name: ClassVar[str]
    """Registry name; also its key in ``r_matrix.json`` and MLflow metric keys (``test/<name>/<center>``)."""
    title: ClassVar[str]
    """How tables and plots name it, e.g. ``Dice`` or ``lesion TPR``."""
    higher_is_better: ClassVar[bool] = True
    bounds: ClassVar[tuple[float, float | None]] = (0.0, 1.0)
    """Smallest and largest possible score (``None``: unbounded above)."""
    unit: ClassVar[str] = ""
    empty_policy: ClassVar[str]
    """What a case with an empty label and/or an empty prediction scores, in words."""

    def __init__(self, cfg: EvalConfig) -> None:
        self.cfg = cfg

    @abstractmethod
    def score(self, case: ScoredCase) -> float:
        """The case's score: within :attr:`bounds`, or NaN where the metric is undefined for it."""

    @classmethod
    def within_bounds(cls, value: float) -> bool:
        """Whether ``value`` is NaN or lies within :attr:`bounds`."""
        low, high = cls.bounds
        return bool(np.isnan(value)) or (value >= low and (high is None or value <= high))
