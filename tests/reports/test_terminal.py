"""The terminal tables of ``mscl train`` and ``mscl evaluate`` keep every center name whole in 80 columns."""

from __future__ import annotations

from report_cases import CANONICAL, DESCENDING
from rich.console import Console

from mscl.api import evaluation_table, result_table
from mscl.protocol.results import StageOutcome, StudyResult
from mscl.strategies.base import StagePlan


def rendered(table) -> str:
    console = Console(width=80, record=True)
    console.print(table)
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    return text


def test_train_table_keeps_stage_and_center_names_whole_in_80_columns() -> None:
    scores = {"dice": dict.fromkeys(CANONICAL, 0.5)}
    result = StudyResult(
        "finetune",
        "continual",
        0,
        DESCENDING,
        "descending",
        CANONICAL,
        ["dice"],
        {"dice": dict.fromkeys(CANONICAL, 0.1)},
    )
    result.stages = [
        StageOutcome(StagePlan(i, c, (c,), False), scores, {}, [], 1.0) for i, c in enumerate(DESCENDING)
    ]
    text = rendered(result_table(result, "0123456789abcdef"))
    assert "…" not in text
    for stage in result.stages:
        assert f"│{stage.stage.name} " in text  # e.g. stage4-Rennes, not stage4-Ren…
    header = next(line for line in text.splitlines() if "after stage" in line)
    assert [cell.strip() for cell in header.split("┃")[2:-1]] == CANONICAL
    assert text.count("0.500 │") + text.count("0.500│") == 8 * 8  # no number folded


def test_evaluate_table_keeps_center_names_whole_in_80_columns() -> None:
    centers = ["Karolinska-Stockholm", *CANONICAL]
    metrics = ["dice", "ndsc", "lesion_f1", "lesion_tpr", "lesion_fdr", "volume_diff_ml"]
    scores = {m: {c: {"a": 0.5, "b": 0.25} for c in centers} for m in metrics}
    text = rendered(evaluation_table(scores, "stage4-Rennes"))
    assert "…" not in text
    for center in centers:
        assert f"│ {center} " in text
