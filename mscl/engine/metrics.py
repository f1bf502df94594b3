"""Segmentation scores: binary Dice of a prediction and the per-case evaluation of a model."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Literal

import numpy as np
import torch
from torch import nn

from mscl.config import EvalConfig
from mscl.engine.device import Precision
from mscl.engine.inference import predict_volume

EmptyPolicy = Literal["one", "zero", "skip"]


def dice(
    pred: np.ndarray | torch.Tensor,
    label: np.ndarray | torch.Tensor,
    threshold: float = 0.5,
    empty_policy: EmptyPolicy = "one",
) -> float:
    """Dice of ``pred >= threshold`` against ``label >= threshold``.

    Both arrays are binarised at the same threshold (the paper: 0.5), so soft labels count their voxels of
    at least 50 % lesion. When prediction and label are both empty, Dice is 0/0 and ``empty_policy`` decides:

    - ``"one"`` (default): 1.0, a correct empty prediction is perfect;
    - ``"zero"``: 0.0;
    - ``"skip"``: NaN, so that ``np.nanmean`` over cases ignores the case.

    A non-empty label with an empty prediction (or the reverse) scores 0.0 under every policy.
    """
    if tuple(pred.shape) != tuple(label.shape):
        raise ValueError(f"prediction shape {tuple(pred.shape)} != label shape {tuple(label.shape)}")
    p = torch.as_tensor(pred) >= threshold
    t = torch.as_tensor(label) >= threshold
    total = int(p.sum()) + int(t.sum())
    if total == 0:
        return {"one": 1.0, "zero": 0.0, "skip": float("nan")}[empty_policy]
    return 2.0 * int((p & t).sum()) / total


def evaluate_cases(
    model: nn.Module,
    cases: Iterable[tuple[str, np.ndarray, np.ndarray]],
    eval_cfg: EvalConfig,
    patch_size: Sequence[int],
    device: torch.device,
    precision: Precision = "auto",
    on_prediction: Callable[[str, np.ndarray], object] | None = None,
) -> dict[str, float]:
    """Dice of every ``(case_id, image, label)`` after sliding-window inference, keyed by case id.

    Cases are consumed one at a time, so ``cases`` may be a generator reading volumes lazily.
    ``on_prediction(case_id, soft_prediction)`` is called for each case, e.g. to save predictions.
    """
    scores: dict[str, float] = {}
    for case_id, image, label in cases:
        prediction = predict_volume(
            model, image, patch_size, eval_cfg.overlap, eval_cfg.window_batch, device, precision
        )
        if on_prediction is not None:
            on_prediction(case_id, prediction)
        scores[case_id] = dice(prediction, label, eval_cfg.threshold, eval_cfg.empty_policy)
    return scores
