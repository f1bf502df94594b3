"""Lesion-load agreement: the absolute difference of predicted and label lesion volume."""

from __future__ import annotations

from mscl.metrics.base import Metric, ScoredCase


class AbsoluteVolumeDifference(Metric):
    """``| |P| - |T| |`` times the voxel volume, in ml, of the binarised prediction P and label T.

    Every voxel counts (no lesion-size filter), so this is the error of the total lesion load, as the WMH
    segmentation challenge's volume difference (Kuijf et al., IEEE TMI 2019) without its normalisation by the
    label volume, which an empty label leaves undefined.
    """

    name = "volume_diff_ml"
    title = "abs. volume diff."
    higher_is_better = False
    bounds = (0.0, None)
    unit = "ml"
    empty_policy = "Both empty: 0.0; one side empty: the other side's volume."

    def score(self, case: ScoredCase) -> float:
        """The case's absolute volume difference in ml."""
        return abs(int(case.pred_mask.sum()) - int(case.label_mask.sum())) * case.voxel_ml
