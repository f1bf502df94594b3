"""Voxel-overlap metrics of the binarised masks: Dice, and the normalised Dice (nDSC) of Shifts."""

from __future__ import annotations

from mscl.config import EvalConfig
from mscl.metrics.base import Metric, ScoredCase


def _both_empty_score(cfg: EvalConfig) -> float:
    """The score of a case whose prediction and label are both empty, by ``eval.empty_policy``."""
    return {"one": 1.0, "zero": 0.0, "skip": float("nan")}[cfg.empty_policy]


class Dice(Metric):
    """Dice similarity coefficient ``2 |P & T| / (|P| + |T|)`` of the binarised prediction P and label T.

    Computed on exact integer counts, so the same numbers as the Dice of format 1 R matrices; equal to
    MONAI's ``compute_dice`` on the same masks (tested).
    """

    name = "dice"
    title = "Dice"
    empty_policy = (
        "Prediction and label both empty: eval.empty_policy (one: 1.0, zero: 0.0, skip: NaN); "
        "exactly one of them empty: 0.0."
    )

    def score(self, case: ScoredCase) -> float:
        """Dice of ``case.pred_mask`` against ``case.label_mask``."""
        total = int(case.pred_mask.sum()) + int(case.label_mask.sum())
        if total == 0:
            return _both_empty_score(self.cfg)
        return 2.0 * int((case.pred_mask & case.label_mask).sum()) / total


class NormalisedDice(Metric):
    """Normalised Dice (nDSC): Dice with false positives rescaled to a reference lesion load.

    Raina et al., "Tackling bias in the Dice similarity coefficient: introducing nDSC for white matter lesion
    segmentation", ISBI 2023; the Shifts MS benchmark (``Shifts-Project/shifts``, ``mswml/metrics.py``,
    ``dice_norm_metric``). With TP, FP, FN voxel counts, ``T = |label|`` and ``N`` voxels in the volume::

        k = (1 - r) T / (r (N - T))
        nDSC = 2 TP / (2 TP + FN + k FP)

    so that a case whose lesion load ``T / N`` equals the reference load ``r`` (``eval.ndsc_reference_load``,
    Shifts: 0.001) scores its plain Dice, and false positives weigh less in a case of low load.

    Empty cases, as in Shifts: an empty label makes ``k = 1``, so any prediction scores 0.0; an empty
    prediction of a non-empty label scores 0.0. Both empty: Shifts returns 1.0; here ``eval.empty_policy``
    decides, as for Dice (its default ``one`` is Shifts' 1.0). A label filling the volume has no false
    positive, ``k FP = 0``, and scores its Dice.
    """

    name = "ndsc"
    title = "nDSC"
    empty_policy = (
        "Prediction and label both empty: eval.empty_policy (one: 1.0, as in Shifts; zero: 0.0; skip: NaN); "
        "exactly one of them empty: 0.0."
    )

    def score(self, case: ScoredCase) -> float:
        """nDSC of ``case.pred_mask`` against ``case.label_mask`` with r = ``eval.ndsc_reference_load``."""
        pred, label = case.pred_mask, case.label_mask
        load = int(label.sum())
        tp = int((pred & label).sum())
        fp = int(pred.sum()) - tp
        fn = load - tp
        if tp + fp + fn == 0:
            return _both_empty_score(self.cfg)
        scaled_fp = 0.0
        if fp:  # a false positive is a background voxel, so N - T > 0 here
            r = self.cfg.ndsc_reference_load
            k = (1.0 - r) * load / (r * (label.size - load)) if load else 1.0
            scaled_fp = k * fp
        return 2.0 * tp / (2.0 * tp + fn + scaled_fp)
