"""``lesion_count_diff``: how many lesions the prediction has too many or too few."""

from __future__ import annotations

from mscl.metrics.base import Metric, ScoredCase


class LesionCountDifference(Metric):
    """``|#predicted lesions - #label lesions|``, lesions as mscl's lesion-wise metrics count them."""

    name = "lesion_count_diff"
    title = "lesion count difference"
    higher_is_better = False
    bounds = (0.0, None)
    unit = "lesions"
    empty_policy = "Both empty: 0; one side empty: the other side's lesion count."

    def score(self, case: ScoredCase) -> float:
        return float(abs(case.lesions.pred_lesions - case.lesions.label_lesions))
