"""Lesion-wise detection: connected components of label and prediction, matched by overlap.

A lesion is a connected component (``eval.lesion_connectivity``: 6, 18 or 26 neighbours) of a binarised
mask whose volume is at least ``eval.lesion_min_volume_mm3``. Smaller components are ignored entirely, in
label and prediction alike: they are not counted, and their voxels neither cover nor are covered by
anything (as in Anima's ``animaSegPerfAnalyzer``, which removes them before matching).

A label lesion is *detected* when more than ``eval.lesion_overlap`` of its voxels lie in predicted lesions
(0: at least one voxel). A predicted lesion is *matched* by the same rule applied the other way, against
the label lesions; an unmatched one is a *false detection*. This is the alpha test of Commowick et al.,
"Objective evaluation of multiple sclerosis lesion segmentation using a data management and processing
infrastructure", Sci Rep 8, 13650 (2018); their further beta/gamma tests (the predicted lesions detecting a
label lesion must not reach too far outside it) are not applied.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from mscl.config import EvalConfig
from mscl.metrics.base import Metric, ScoredCase

_RANK = {6: 1, 18: 2, 26: 3}
"""``generate_binary_structure`` rank of each 3-D neighbourhood size."""


@dataclass(frozen=True)
class LesionMatch:
    """Lesion counts of one case after matching."""

    label_lesions: int
    """Lesions in the label."""
    detected: int
    """Label lesions detected by the prediction."""
    pred_lesions: int
    """Lesions in the prediction."""
    false_detections: int
    """Predicted lesions that match no label lesion."""

    @property
    def matched_predictions(self) -> int:
        """Predicted lesions that match a label lesion."""
        return self.pred_lesions - self.false_detections


class _Components:
    """The connected components of one binary mask, and which of them are lesions."""

    def __init__(self, mask: np.ndarray, structure: np.ndarray, voxel_mm3: float, min_mm3: float) -> None:
        self.ids, count = ndimage.label(mask, structure=structure)
        self.sizes = np.bincount(self.ids.ravel(), minlength=count + 1)
        self.is_lesion = self.sizes * voxel_mm3 >= min_mm3
        self.is_lesion[0] = False  # the background

    @property
    def lesion_mask(self) -> np.ndarray:
        """The voxels of the lesions (components too small are left out)."""
        return self.is_lesion[self.ids]

    def found(self, other: np.ndarray, overlap: float) -> np.ndarray:
        """Per lesion, whether more than ``overlap`` of its voxels lie in the ``other`` mask."""
        covered = np.bincount(self.ids[other], minlength=self.sizes.size)
        lesion_ids = np.flatnonzero(self.is_lesion)
        return covered[lesion_ids] / self.sizes[lesion_ids] > overlap


def match_lesions(
    pred_mask: np.ndarray, label_mask: np.ndarray, spacing: Sequence[float], cfg: EvalConfig
) -> LesionMatch:
    """Match the lesions of two binary ``(D, H, W)`` masks by the rules of :mod:`mscl.metrics.lesions`."""
    structure = ndimage.generate_binary_structure(label_mask.ndim, _RANK[cfg.lesion_connectivity])
    voxel_mm3 = float(np.prod(spacing))
    label = _Components(label_mask, structure, voxel_mm3, cfg.lesion_min_volume_mm3)
    pred = _Components(pred_mask, structure, voxel_mm3, cfg.lesion_min_volume_mm3)
    detected = label.found(pred.lesion_mask, cfg.lesion_overlap)
    matched = pred.found(label.lesion_mask, cfg.lesion_overlap)
    return LesionMatch(
        label_lesions=int(detected.size),
        detected=int(detected.sum()),
        pred_lesions=int(matched.size),
        false_detections=int(matched.size - matched.sum()),
    )


class LesionTruePositiveRate(Metric):
    """Lesion-wise sensitivity: detected label lesions / label lesions (Commowick et al., 2018)."""

    name = "lesion_tpr"
    title = "lesion TPR"
    empty_policy = "No label lesion: NaN (nothing to detect); label lesions but no predicted lesion: 0.0."

    def score(self, case: ScoredCase) -> float:
        """The case's lesion TPR."""
        match = case.lesions
        if match.label_lesions == 0:
            return float("nan")
        return match.detected / match.label_lesions


class LesionFalseDetectionRate(Metric):
    """Lesion-wise false detection rate: false detections / predicted lesions (1 - lesion PPV).

    A case with no predicted lesion made no false detection and scores 0.0, whether its label is empty or
    not: the rate is about the detections made, and a miss is what lesion TPR and F1 count. It keeps the rate
    defined for every case, so that a model silent on a center still gets a score there (NaN would drop
    those cases and reward silence by leaving it out of the mean).
    """

    name = "lesion_fdr"
    title = "lesion FDR"
    higher_is_better = False
    empty_policy = "No predicted lesion: 0.0, whatever the label (no false detection was made)."

    def score(self, case: ScoredCase) -> float:
        """The case's lesion FDR."""
        match = case.lesions
        if match.pred_lesions == 0:
            return 0.0
        return match.false_detections / match.pred_lesions


class LesionF1(Metric):
    """Lesion-wise F1 = 2 TPR PPV / (TPR + PPV), with PPV = 1 - FDR (Commowick et al., 2018).

    TPR counts detected label lesions and PPV matched predicted lesions, as in the paper's detection F1.
    """

    name = "lesion_f1"
    title = "lesion F1"
    empty_policy = (
        "No lesion in label nor prediction: 1.0; lesions on one side only: 0.0; TPR and PPV both 0: 0.0."
    )

    def score(self, case: ScoredCase) -> float:
        """The case's lesion F1."""
        match = case.lesions
        if match.label_lesions == 0 and match.pred_lesions == 0:
            return 1.0
        if match.label_lesions == 0 or match.pred_lesions == 0:
            return 0.0
        tpr = match.detected / match.label_lesions
        ppv = match.matched_predictions / match.pred_lesions
        if tpr + ppv == 0:
            return 0.0
        return 2.0 * tpr * ppv / (tpr + ppv)
