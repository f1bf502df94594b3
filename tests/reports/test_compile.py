"""Compiling runs: exact numbers against hand-computed values, without MLflow."""

from __future__ import annotations

import math

import numpy as np
import pytest
from report_cases import DESCENDING, SEEDS, TABLE1, bwt_matrix, parent, table1_runs

from mscl.reports.compile import canonical_centers, compile_runs
from mscl.tracking.rmatrix import RMatrix

STD_OF_PERTURBATION = math.sqrt(sum((s - 4) ** 2 for s in SEEDS) / (len(SEEDS) - 1)) / 1000


@pytest.fixture(scope="module")
def table1():
    runs = [parent(rm) for s in ("finetune", "replay") for rm in table1_runs(s)]
    return compile_runs(runs)


@pytest.mark.parametrize("strategy", ["finetune", "replay"])
def test_per_center_bwt_reproduces_table1(table1, strategy) -> None:
    (section,) = table1.sections
    assert section.order_kind == "descending"
    for center, expected in zip(DESCENDING, TABLE1[strategy], strict=True):
        stat = section.per_center_bwt[strategy][center]
        assert stat.n == 9
        assert stat.mean == pytest.approx(expected, abs=1e-12)
        expected_std = 0.0 if center == "AMU" else STD_OF_PERTURBATION
        assert stat.std == pytest.approx(expected_std, abs=1e-12)


def test_table_rows_follow_the_descending_order(table1) -> None:
    assert table1.centers == DESCENDING


def test_bwt_averages_the_first_k_minus_1_stages(table1) -> None:
    summary = table1.sections[0].summary["finetune"]
    first = TABLE1["finetune"][:-1]
    assert summary["bwt"].mean == pytest.approx(sum(first) / 7, abs=1e-12)
    assert summary["bwt"].mean != pytest.approx(sum(first) / 8, abs=1e-4)


def test_acc_fwt_forgetting_match_hand_computation(table1) -> None:
    summary = table1.sections[0].summary["replay"]
    b = TABLE1["replay"]
    final_row = [0.5 + 0.01 * i + b[i] for i in range(7)] + [0.57]
    assert summary["acc"].mean == pytest.approx(sum(final_row) / 8, abs=1e-12)
    # Before its stage every center scores 0.3 against a baseline of 0.1.
    assert summary["fwt"].mean == pytest.approx(0.2, abs=1e-12)
    # Best score after training is right after the stage, so forgetting = -(BWT + offset).
    assert summary["forgetting"].mean == pytest.approx(-sum(b[:7]) / 7, abs=1e-12)
    assert summary["forgetting"].std == pytest.approx(STD_OF_PERTURBATION, abs=1e-12)


def test_paired_wilcoxon_over_nine_matched_seeds(table1) -> None:
    tests = {t.metric: t for t in table1.sections[0].tests}
    bwt = tests["bwt"]
    assert (bwt.a, bwt.b, bwt.n) == ("finetune", "replay", 9)
    # The seed offsets cancel: every seed's difference is the same negative number.
    expected = (sum(TABLE1["finetune"][:7]) - sum(TABLE1["replay"][:7])) / 7
    assert bwt.mean_diff == pytest.approx(expected, abs=1e-12)
    assert bwt.p_value == pytest.approx(2 / 2**9)


def test_heatmap_mean_and_std_over_seeds_in_training_order(table1) -> None:
    heatmap = table1.sections[0].heatmaps["finetune"]
    assert heatmap.order == DESCENDING and heatmap.n == 9
    milan = DESCENDING.index("Milan")
    assert heatmap.mean[2, milan] == pytest.approx(0.52)
    assert heatmap.mean[7, milan] == pytest.approx(0.52 - 0.284)
    assert heatmap.std[7, milan] == pytest.approx(STD_OF_PERTURBATION)
    assert heatmap.std[0, milan] == 0.0


def test_different_orders_align_on_canonical_centers() -> None:
    a = RMatrix(
        strategy="finetune",
        seed=0,
        order=["A", "B", "C"],
        centers=["A", "B", "C"],
        matrix=bwt_matrix([0.1, -0.2, 0.0], ["A", "B", "C"], ["A", "B", "C"]),
    )
    b = RMatrix(
        strategy="finetune",
        seed=1,
        order=["C", "A", "B"],
        centers=["C", "B", "A"],
        matrix=bwt_matrix([0.05, 0.3, 0.0], ["C", "A", "B"], ["C", "B", "A"]),
    )
    compiled = compile_runs([parent(a, "random"), parent(b, "random")])
    (section,) = compiled.sections
    bwt = {c: s.mean for c, s in section.per_center_bwt["finetune"].items()}
    assert bwt == pytest.approx({"A": 0.2, "B": -0.1, "C": 0.025}, abs=1e-12)
    assert section.heatmaps == {}
    assert [p.seeds for p in section.per_order.values()] == [[0], [1]]
    # Zero-shot after stage 1: the first center scores 0.5, the two others 0.3.
    assert section.zero_shot["finetune"][0].mean == pytest.approx((0.5 + 0.3 + 0.3) / 3)


def test_single_seed_has_no_spread_and_a_note() -> None:
    (rm,) = table1_runs("finetune")[:1]
    compiled = compile_runs([parent(rm)])
    stat = compiled.sections[0].per_center_bwt["finetune"]["BWH"]
    assert stat.n == 1 and math.isnan(stat.std) and math.isnan(stat.ci_low)
    assert any("One seed only" in note for note in compiled.notes)
    assert all(math.isnan(t.p_value) for t in compiled.sections[0].tests)


def test_references_and_costs() -> None:
    single = RMatrix(
        strategy="single",
        kind="single",
        seed=0,
        order=["A", "B"],
        centers=["A", "B"],
        matrix=[[0.6, 0.2], [0.4, 0.8]],
    )
    joint = [
        RMatrix(
            strategy="joint", kind="joint", seed=s, order=["joint"], centers=["A", "B"], matrix=[[v, 0.5]]
        )
        for s, v in ((0, 0.7), (1, 0.5))
    ]
    runs = [parent(single, metrics={"wall_time_s": 60.0})] + [
        parent(rm, "random", {"wall_time_s": 100.0 + 20 * rm.seed}) for rm in joint
    ]
    compiled = compile_runs(runs)
    assert compiled.sections == []
    assert compiled.references["single"].mean == pytest.approx((0.4 + 0.6) / 2)
    assert compiled.references["joint"].mean == pytest.approx((0.6 + 0.5) / 2)
    assert compiled.references["joint"].std == pytest.approx(np.std([0.6, 0.5], ddof=1))
    cost = compiled.costs[("joint", "reference")]["wall_time_s"]
    assert (cost.mean, cost.n) == (pytest.approx(110.0), 2)


def test_canonical_centers_without_a_descending_run() -> None:
    rm = RMatrix(
        strategy="replay", seed=0, order=["B", "A"], centers=["A", "B"], matrix=[[0.1, 0.2], [0.3, 0.4]]
    )
    assert canonical_centers([parent(rm, "random")]) == ["A", "B"]
