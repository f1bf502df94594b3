"""EWC, MAS and LwF terms: their penalties by hand, their importances, their teacher, their state, and
replay carrying them by config."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch

from mscl.config import ExperimentConfig, TrainConfig, load_config
from mscl.engine.loss import soft_dice_loss
from mscl.models.unet import build_model
from mscl.strategies import build_strategy
from mscl.strategies.base import ExtraCase, StageContext, StagePlan
from mscl.strategies.regularisers import (
    EwcSettings,
    EwcTerm,
    LwfSettings,
    LwfTerm,
    MasSettings,
    MasTerm,
    gradient_moments,
)
from mscl.testing.strategies import assert_resume_is_exact

TRAIN = TrainConfig(patch_size=(8, 8, 8), patches_per_case=2, cases_per_step=2, device="cpu")


def tiny_model() -> torch.nn.Module:
    return build_model(load_config("tiny", overrides=["model.channels=[2,4,8]"]).model, seed=0)


def blob(seed: int) -> ExtraCase:
    rng = np.random.default_rng(seed)
    image = rng.normal(0, 0.3, (12, 12, 12)).astype(np.float32)
    label = np.zeros_like(image)
    label[3:8, 4:9, 2:7] = 1.0
    meta = {"center": "A", "subject": f"s{seed}", "contrast": "FLAIR", "lesion_voxels": 125}
    return ExtraCase(f"A-{seed}", image + 2 * label, label, meta)


def context(model: torch.nn.Module, index: int = 0, seed: int = 7) -> StageContext:
    stage = StagePlan(index, "A", ("A",), fresh=index == 0)
    return StageContext(stage, model, [blob(0), blob(1)], torch.device("cpu"), TRAIN, seed)


def perturbed(model: torch.nn.Module, delta: float) -> torch.nn.Module:
    with torch.no_grad():
        for p in model.parameters():
            p.add_(delta)
    return model


def test_ewc_penalty_is_half_lambda_times_the_fisher_weighted_squared_distance() -> None:
    model = tiny_model()
    term = EwcTerm(EwcSettings(**{"lambda": 8.0, "fisher_patches": 4}))
    images = torch.zeros(1, 1, 8, 8, 8)
    assert term.loss_term(model, images, images) is None  # no stage has ended yet
    term.after_stage(context(model))
    fisher = term.importance
    assert all((f >= 0).all() for f in fisher.values()) and any((f > 0).any() for f in fisher.values())
    assert float(term.loss_term(model, images, images).detach()) == 0.0  # at the anchor
    perturbed(model, 0.1)
    expected = 8.0 / 2 * sum(float((f * 0.1**2).sum()) for f in fisher.values())
    assert float(term.loss_term(model, images, images).detach()) == pytest.approx(expected, rel=1e-4)


def test_online_ewc_decays_the_earlier_fisher() -> None:
    model = tiny_model()
    term = EwcTerm(EwcSettings(**{"lambda": 1.0, "fisher_patches": 4, "gamma": 0.5}))
    term.after_stage(context(model, 0))
    first = {n: f.clone() for n, f in term.importance.items()}
    new = gradient_moments(context(model, 1), 4, lambda p, t: soft_dice_loss(p, t), torch.square)
    term.after_stage(context(model, 1))
    for name, fisher in term.importance.items():
        torch.testing.assert_close(fisher, 0.5 * first[name] + new[name])


def test_fisher_estimate_is_deterministic_and_leaves_the_model_as_it_was() -> None:
    model = tiny_model()
    model.train()
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    first = gradient_moments(context(model), 6, lambda p, t: soft_dice_loss(p, t), torch.square)
    again = gradient_moments(context(model), 6, lambda p, t: soft_dice_loss(p, t), torch.square)
    assert all(torch.equal(first[n], again[n]) for n in first)
    assert model.training and all(p.grad is None for p in model.parameters())
    assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())


def test_mas_importance_needs_no_labels_and_accumulates() -> None:
    model = tiny_model()
    term = MasTerm(MasSettings(**{"lambda": 2.0, "patches": 4}))
    unlabelled = context(model)
    for case in unlabelled.train_cases:
        case.label = np.zeros_like(case.label)  # labels only steer where patches are drawn
    term.after_stage(context(model))
    first = {n: f.clone() for n, f in term.importance.items()}
    assert all((f >= 0).all() for f in first.values())
    term.after_stage(context(model, 1))
    assert all((term.importance[n] >= first[n]).all() for n in first)  # Omega <- Omega + Omega_new
    images = torch.zeros(1, 1, 8, 8, 8)
    perturbed(model, -0.05)
    expected = 2.0 * sum(float((f * 0.05**2).sum()) for f in term.importance.values())
    assert float(term.loss_term(model, images, images).detach()) == pytest.approx(expected, rel=1e-4)


def test_lwf_distils_from_a_frozen_copy_of_the_previous_stage() -> None:
    model = tiny_model()
    term = LwfTerm(LwfSettings(weight=0.5))
    term.before_stage(context(model))
    images = torch.randn(2, 1, 8, 8, 8)
    assert term.teacher is None and term.loss_term(model, images, model(images)) is None
    term.after_stage(context(model))
    previous = {k: v.clone() for k, v in model.state_dict().items()}
    perturbed(model, 0.2)  # the next stage moves the student away
    term.before_stage(context(model, 1))
    teacher = term.teacher
    assert teacher is not None and not teacher.training
    assert all(not p.requires_grad for p in teacher.parameters())
    assert all(torch.equal(v, previous[k]) for k, v in teacher.state_dict().items())
    prediction = model(images)
    value = term.loss_term(model, images, prediction)
    assert value is not None and value.requires_grad
    torch.testing.assert_close(value, 0.5 * soft_dice_loss(prediction, teacher(images)))


@pytest.mark.parametrize(
    ("kind", "settings"), [(EwcTerm, EwcSettings()), (MasTerm, MasSettings()), (LwfTerm, LwfSettings())]
)
def test_a_term_state_survives_a_weights_only_checkpoint(kind, settings) -> None:
    term = kind(settings)
    term.after_stage(context(tiny_model()))
    buffer = io.BytesIO()
    torch.save(term.state_dict(), buffer)
    buffer.seek(0)
    fresh = kind(settings)
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    for key, tensors in term.state_dict().items():
        assert tensors and all(torch.equal(v, fresh.state_dict()[key][n]) for n, v in tensors.items())


def replay_with_terms() -> ExperimentConfig:
    return load_config(
        "tiny",
        overrides=["strategy.name=replay", {"strategy": {"lwf": {"weight": 0.5}, "ewc": {"lambda": 10.0}}}],
    )


def test_replay_carries_the_terms_its_config_switches_on() -> None:
    cfg = replay_with_terms()
    assert cfg.flat()["strategy.ewc.lambda"] == "10.0" and cfg.flat()["strategy.lwf.weight"] == "0.5"
    strategy = build_strategy(cfg, 0)
    try:
        assert [type(t) for t in strategy.terms] == [EwcTerm, LwfTerm]
        assert set(strategy.state_dict()) == {"ewc", "lwf"}
        with pytest.raises(ValueError, match=r"keeps the state of \['ewc', 'lwf'\], got \['mas'\]"):
            strategy.load_state_dict({"mas": {}})
    finally:
        strategy.close()
    plain = build_strategy(load_config("tiny", overrides=["strategy.name=replay"]), 0)
    assert plain.terms == [] and plain.state_dict() == {}
    plain.close()


def test_the_regularised_strategies_carry_their_term_by_default() -> None:
    for name, kind in (("ewc", EwcTerm), ("mas", MasTerm), ("lwf", LwfTerm)):
        strategy = build_strategy(load_config("tiny", overrides=[f"strategy.name={name}"]), 0)
        assert [type(t) for t in strategy.terms] == [kind]


def test_replay_with_ewc_and_lwf_resumes_exactly(blob_dataset: Path, tmp_path: Path) -> None:
    terms = {"strategy": {"lwf": {"weight": 0.5}, "ewc": {"lambda": 10.0, "fisher_patches": 4}}}
    assert_resume_is_exact(blob_dataset, tmp_path, "replay", terms)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_the_terms_keep_a_cuda_step_free_of_host_syncs() -> None:
    from mscl.engine.trainer import make_optimizer, optimizer_step

    cfg = load_config(
        "tiny",
        overrides=[
            "strategy.name=replay",
            "model.channels=[2,4,8]",
            {"strategy": {"lwf": {}, "ewc": {"fisher_patches": 4}, "mas": {"patches": 4}}},
        ],
    )
    train = TRAIN.model_copy(update={"device": "cuda", "precision": "auto"})
    model = build_model(cfg.model, seed=0).cuda()
    strategy = build_strategy(cfg, 0)
    try:
        first = StageContext(
            StagePlan(0, "A", ("A",), True), model, [blob(0), blob(1)], torch.device("cuda"), train, 0
        )
        strategy.after_stage(first)
        strategy.before_stage(
            StageContext(StagePlan(1, "A", ("A",), False), model, [], torch.device("cuda"), train, 1)
        )
        optimizer = make_optimizer(model, train)
        images = torch.rand(4, 1, *train.patch_size, device="cuda")
        labels = (images > 0.9).float()
        optimizer_step(model, optimizer, images, labels, train, strategy.loss_term)  # warm-up
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            for _ in range(3):
                optimizer_step(model, optimizer, images, labels, train, strategy.loss_term)
        finally:
            torch.cuda.set_sync_debug_mode(0)
    finally:
        strategy.close()
