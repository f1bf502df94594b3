"""Compiling runs: exact numbers against hand-computed values, without MLflow, for every metric."""

from __future__ import annotations

import math

import numpy as np
import pytest
from report_cases import (
    DESCENDING,
    RAW,
    SEEDS,
    SIGNED_SCALE,
    TABLE1,
    VOLUME,
    bwt_matrix,
    parent,
    rmatrix,
    table1_runs,
)

from mscl.metrics.volume import AbsoluteVolumeDifference
from mscl.reports.compile import MetricInfo, canonical_centers, compile_runs, describe_metric, metric_names
from mscl.tracking.rmatrix import MetricMatrix, RMatrix

STD_OF_PERTURBATION = math.sqrt(sum((s - 4) ** 2 for s in SEEDS) / (len(SEEDS) - 1)) / 1000
METRIC_NAMES = ["dice", VOLUME]


@pytest.fixture(scope="module")
def table1():
    runs = [parent(rm) for s in ("finetune", "replay") for rm in table1_runs(s)]
    return compile_runs(runs)


def test_metrics_found_in_the_runs_headline_first(table1) -> None:
    assert list(table1.metrics) == METRIC_NAMES
    assert table1.headline.info.name == "dice" and table1.headline.info.headline
    volume = table1.metrics[VOLUME].info
    assert (volume.title, volume.unit, volume.higher_is_better, volume.bounded) == (
        AbsoluteVolumeDifference.title,
        "ml",
        False,
        False,
    )
    assert (volume.suffix, table1.headline.info.suffix) == ("_volume_diff_ml", "")
    assert volume.label == "abs. volume diff. (ml)"


@pytest.mark.parametrize("metric", METRIC_NAMES)
@pytest.mark.parametrize("strategy", ["finetune", "replay"])
def test_per_center_bwt_reproduces_table1(table1, strategy, metric) -> None:
    (section,) = table1.metrics[metric].sections
    assert section.order_kind == "descending" and section.metric.name == metric
    scale = SIGNED_SCALE[metric]
    for center, expected in zip(DESCENDING, TABLE1[strategy], strict=True):
        stat = section.per_center_bwt[strategy][center]
        assert stat.n == 9
        assert stat.mean == pytest.approx(scale * expected, abs=1e-12)
        expected_std = 0.0 if center == "AMU" else scale * STD_OF_PERTURBATION
        assert stat.std == pytest.approx(expected_std, abs=1e-12)


def test_table_rows_follow_the_descending_order(table1) -> None:
    assert table1.centers == DESCENDING


@pytest.mark.parametrize("metric", METRIC_NAMES)
def test_bwt_averages_the_first_k_minus_1_stages(table1, metric) -> None:
    summary = table1.metrics[metric].sections[0].summary["finetune"]
    first = [SIGNED_SCALE[metric] * b for b in TABLE1["finetune"][:-1]]
    assert summary["bwt"].mean == pytest.approx(sum(first) / 7, abs=1e-12)
    assert summary["bwt"].mean != pytest.approx(sum(first) / 8, abs=1e-4)


@pytest.mark.parametrize("metric", METRIC_NAMES)
def test_acc_fwt_forgetting_match_hand_computation(table1, metric) -> None:
    summary = table1.metrics[metric].sections[0].summary["replay"]
    b, scale, raw = TABLE1["replay"], SIGNED_SCALE[metric], RAW[metric]
    final_row = [raw(0.5 + 0.01 * i + b[i]) for i in range(7)] + [raw(0.57)]
    assert summary["acc"].mean == pytest.approx(sum(final_row) / 8, abs=1e-12)  # in the metric's units
    # Before its stage every center scores 0.3 against a baseline of 0.1 (Dice).
    assert summary["fwt"].mean == pytest.approx(scale * 0.2, abs=1e-12)
    # Best score after training is right after the stage, so forgetting = -(BWT + offset).
    assert summary["forgetting"].mean == pytest.approx(-scale * sum(b[:7]) / 7, abs=1e-12)
    assert summary["forgetting"].std == pytest.approx(scale * STD_OF_PERTURBATION, abs=1e-12)


@pytest.mark.parametrize("metric", METRIC_NAMES)
def test_paired_wilcoxon_over_nine_matched_seeds(table1, metric) -> None:
    tests = {t.metric: t for t in table1.metrics[metric].sections[0].tests}
    bwt = tests["bwt"]
    assert (bwt.a, bwt.b, bwt.n) == ("finetune", "replay", 9)
    # The seed offsets cancel: every seed's difference is the same negative number.
    expected = (sum(TABLE1["finetune"][:7]) - sum(TABLE1["replay"][:7])) / 7
    assert bwt.mean_diff == pytest.approx(SIGNED_SCALE[metric] * expected, abs=1e-12)
    assert bwt.p_value == pytest.approx(2 / 2**9)


@pytest.mark.parametrize("metric", METRIC_NAMES)
def test_heatmap_mean_and_std_over_seeds_in_training_order(table1, metric) -> None:
    heatmap = table1.metrics[metric].sections[0].heatmaps["finetune"]
    raw = RAW[metric]
    assert heatmap.order == DESCENDING and heatmap.n == 9
    milan = DESCENDING.index("Milan")
    assert heatmap.mean[2, milan] == pytest.approx(raw(0.52))
    assert heatmap.mean[7, milan] == pytest.approx(raw(0.52 - 0.284))
    assert heatmap.std[7, milan] == pytest.approx(SIGNED_SCALE[metric] * STD_OF_PERTURBATION)
    assert heatmap.std[0, milan] == 0.0


def test_lower_is_better_bwt_is_sign_flipped() -> None:
    """Volume difference A: 2.0 ml after its stage, 3.5 ml at the end (worse), so BWT(A) = -(3.5 - 2.0)."""
    rm = RMatrix(
        strategy="finetune",
        seed=0,
        order=["A", "B"],
        centers=["A", "B"],
        metrics={
            VOLUME: MetricMatrix(
                higher_is_better=False,
                bounds=(0.0, None),
                matrix=[[2.0, 6.0], [3.5, 4.0]],
                baseline=[7.0, 8.0],
            )
        },
    )
    section = compile_runs([parent(rm)]).metrics[VOLUME].sections[0]
    summary = section.summary["finetune"]
    assert section.per_center_bwt["finetune"]["A"].mean == pytest.approx(-1.5)
    assert summary["bwt"].mean == pytest.approx(-1.5)
    assert summary["forgetting"].mean == pytest.approx(1.5)  # best (lowest) 2.0, final 3.5
    assert summary["fwt"].mean == pytest.approx(8.0 - 6.0)  # B before its stage: 6.0 ml, untrained 8.0 ml
    assert summary["acc"].mean == pytest.approx((3.5 + 4.0) / 2)  # not negated


def test_format_1_run_compiles_as_dice() -> None:
    legacy = {
        "strategy": "replay",
        "seed": 0,
        "order": ["B", "A"],
        "centers": ["A", "B"],
        "metric": "dice@0.5",
        "matrix": [[0.2, 0.6], [0.5, 0.7]],
        "baseline": [0.1, 0.1],
    }
    compiled = compile_runs([parent(RMatrix.model_validate(legacy), "random")])
    assert list(compiled.metrics) == ["dice"]
    section = compiled.headline.sections[0]
    assert section.per_center_bwt["replay"]["B"].mean == pytest.approx(0.7 - 0.6)
    assert section.summary["replay"]["fwt"].mean == pytest.approx(0.2 - 0.1)


def test_a_run_without_a_metric_is_left_out_of_that_metric_only() -> None:
    finetune = [parent(rm) for rm in table1_runs("finetune")[:3]]
    replay = parent(table1_runs("replay", with_volume=False)[0])
    compiled = compile_runs([*finetune, replay])
    dice, volume = (compiled.metrics[m].sections[0] for m in METRIC_NAMES)
    assert [g.strategy for g in dice.groups] == ["finetune", "replay"]
    assert [g.strategy for g in volume.groups] == ["finetune"]
    assert volume.tests == [] and set(volume.heatmaps) == {"finetune"}
    assert volume.per_center_bwt["finetune"]["Milan"].n == 3
    (note,) = [n for n in compiled.notes if AbsoluteVolumeDifference.title in n]
    assert "replay-seed0" in note and "finetune" not in note


def test_metric_names_union_in_first_found_order_most_common_headline_first() -> None:
    def study(seed: int, names: list[str]) -> RMatrix:
        return RMatrix(
            strategy="s",
            seed=seed,
            order=["A"],
            centers=["A"],
            metrics={n: MetricMatrix(matrix=[[0.5]]) for n in names},
        )

    runs = [parent(study(0, ["ndsc", "dice"])), parent(study(1, ["dice", "lesion_f1"]))]
    runs.append(parent(study(2, ["dice"])))
    assert metric_names(runs) == ["dice", "ndsc", "lesion_f1"]


def test_describe_metric_from_the_registry_or_from_the_r_matrix() -> None:
    stored = MetricMatrix(higher_is_better=False, bounds=(0.0, None), matrix=[[3.0]])
    dice = describe_metric("dice", MetricMatrix(matrix=[[0.5]]), headline=True)
    assert (dice.title, dice.higher_is_better, dice.bounds, dice.headline) == ("Dice", True, (0.0, 1.0), True)
    plugin = describe_metric("my_plugin_metric", stored)
    assert (plugin.title, plugin.unit, plugin.higher_is_better, plugin.bounds) == (
        "my_plugin_metric",
        "",
        False,
        (0.0, None),
    )
    assert MetricInfo("load", "lesion load", "ml", False, (0.0, None)).label == "lesion load (ml)"
    assert (plugin.label, plugin.suffix, plugin.direction) == (
        "my_plugin_metric",
        "_my_plugin_metric",
        "lower is better",
    )


def test_different_orders_align_on_canonical_centers() -> None:
    order_a, centers_a = ["A", "B", "C"], ["A", "B", "C"]
    order_b, centers_b = ["C", "A", "B"], ["C", "B", "A"]
    a = rmatrix("finetune", 0, order_a, centers_a, bwt_matrix([0.1, -0.2, 0.0], order_a, centers_a))
    b = rmatrix("finetune", 1, order_b, centers_b, bwt_matrix([0.05, 0.3, 0.0], order_b, centers_b))
    compiled = compile_runs([parent(a, "random"), parent(b, "random")])
    for metric in METRIC_NAMES:
        (section,) = compiled.metrics[metric].sections
        bwt = {c: s.mean for c, s in section.per_center_bwt["finetune"].items()}
        expected = {"A": 0.2, "B": -0.1, "C": 0.025}
        assert bwt == pytest.approx({c: SIGNED_SCALE[metric] * v for c, v in expected.items()}, abs=1e-12)
        assert section.heatmaps == {}
        assert [p.seeds for p in section.per_order.values()] == [[0], [1]]
        # Zero-shot after stage 1: the first center scores 0.5, the two others 0.3 (Dice).
        raw = RAW[metric]
        assert section.zero_shot["finetune"][0].mean == pytest.approx((raw(0.5) + 2 * raw(0.3)) / 3)


def test_single_seed_has_no_spread_and_a_note() -> None:
    (rm,) = table1_runs("finetune")[:1]
    compiled = compile_runs([parent(rm)])
    for report in compiled.metrics.values():
        stat = report.sections[0].per_center_bwt["finetune"]["BWH"]
        assert stat.n == 1 and math.isnan(stat.std) and math.isnan(stat.ci_low)
        assert all(math.isnan(t.p_value) for t in report.sections[0].tests)
    assert any("One seed only" in note for note in compiled.notes)


def test_references_and_costs() -> None:
    single = rmatrix("single", 0, ["A", "B"], ["A", "B"], [[0.6, 0.2], [0.4, 0.8]], kind="single")
    joint = [
        rmatrix("joint", s, ["joint"], ["A", "B"], [[v, 0.5]], kind="joint") for s, v in ((0, 0.7), (1, 0.5))
    ]
    runs = [parent(single, metrics={"wall_time_s": 60.0})] + [
        parent(rm, "random", {"wall_time_s": 100.0 + 20 * rm.seed}) for rm in joint
    ]
    compiled = compile_runs(runs)
    for metric in METRIC_NAMES:
        report, raw = compiled.metrics[metric], RAW[metric]
        assert report.sections == []
        assert report.references["single"].mean == pytest.approx((raw(0.4) + raw(0.6)) / 2)
        assert report.references["joint"].mean == pytest.approx((raw(0.6) + raw(0.5)) / 2)
        joint_means = [(raw(0.7) + raw(0.5)) / 2, (raw(0.5) + raw(0.5)) / 2]
        assert report.references["joint"].std == pytest.approx(np.std(joint_means, ddof=1))
    cost = compiled.costs[("joint", "reference")]["wall_time_s"]
    assert (cost.mean, cost.n) == (pytest.approx(110.0), 2)


def test_canonical_centers_without_a_descending_run() -> None:
    rm = rmatrix("replay", 0, ["B", "A"], ["A", "B"], [[0.1, 0.2], [0.3, 0.4]])
    assert canonical_centers([parent(rm, "random")]) == ["A", "B"]
