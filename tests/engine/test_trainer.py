"""One training stage on tiny blob volumes: learning, bitwise reproducibility, resume, metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mscl.config import ModelConfig, TrainConfig
from mscl.engine.cache import CaseCache
from mscl.engine.trainer import StageResult, epoch_length, train_stage
from mscl.models.unet import build_model

from .conftest import blob_case


def _cache(cases: list[tuple[np.ndarray, np.ndarray]]) -> CaseCache:
    return CaseCache.from_arrays([image for image, _ in cases], [label for _, label in cases], "cpu")


def _train(
    model_cfg: ModelConfig, cfg: TrainConfig, cache: CaseCache, epochs: int, **kwargs
) -> tuple[torch.nn.Module, StageResult]:
    model = build_model(model_cfg, seed=0)
    return model, train_stage(model, cache, cfg, epochs=epochs, seed=7, **kwargs)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(
        torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )


def test_training_reduces_the_loss_and_is_bitwise_reproducible(blobs, tiny_model_cfg, tiny_train_cfg) -> None:
    cache = _cache(blobs)
    first_model, first = _train(tiny_model_cfg, tiny_train_cfg, cache, epochs=10)
    again_model, again = _train(tiny_model_cfg, tiny_train_cfg, cache, epochs=10)
    losses = [entry["loss"] for entry in first.history]
    assert np.mean(losses[-3:]) < 0.75 * losses[0]
    assert losses == [entry["loss"] for entry in again.history]
    assert _same_weights(first_model, again_model)


def test_resumed_stage_matches_an_uninterrupted_one(blobs, tiny_model_cfg, tiny_train_cfg) -> None:
    cache = _cache(blobs)
    whole_model, whole = _train(tiny_model_cfg, tiny_train_cfg, cache, epochs=4)
    part_model, part = _train(tiny_model_cfg, tiny_train_cfg, cache, epochs=2)
    rest = train_stage(part_model, cache, tiny_train_cfg, epochs=4, seed=7, resume=part.state)
    assert rest.state.epoch == 4
    assert [e["epoch"] for e in rest.history] == [2.0, 3.0]
    assert [e["loss"] for e in part.history + rest.history] == [e["loss"] for e in whole.history]
    assert _same_weights(whole_model, part_model)


def test_metrics_schedule_steps_and_callbacks(tiny_model_cfg, tiny_train_cfg) -> None:
    cache = _cache([blob_case(seed) for seed in range(3)])
    cfg = tiny_train_cfg.model_copy(update={"scheduler_step": 2, "scheduler_gamma": 0.5, "lr": 0.01})
    epochs: list[tuple[int, dict[str, float]]] = []
    ticks: list[tuple[int, int]] = []
    _, result = _train(
        tiny_model_cfg,
        cfg,
        cache,
        epochs=3,
        device=torch.device("cpu"),
        on_epoch=lambda epoch, metrics: epochs.append((epoch, metrics)),
        progress=lambda done, total: ticks.append((done, total)),
    )
    assert result.steps == 6
    assert ticks == [(step, 6) for step in range(1, 7)]
    assert [epoch for epoch, _ in epochs] == [0, 1, 2]
    assert [metrics["lr"] for _, metrics in epochs] == pytest.approx([0.01, 0.01, 0.005])
    for (_, metrics), entry in zip(epochs, result.history, strict=True):
        assert set(metrics) == {"loss", "lr", "patches_per_s", "seconds"}
        assert entry == {"epoch": entry["epoch"], **metrics}
        assert 0 < metrics["loss"] < 1
        assert metrics["patches_per_s"] == pytest.approx(3 * cfg.patches_per_case / metrics["seconds"])
    assert result.state.scheduler["last_epoch"] == 3


def test_cache_on_another_device_is_refused(blobs, tiny_model_cfg, tiny_train_cfg) -> None:
    with pytest.raises(ValueError, match="not on the training device meta"):
        _train(tiny_model_cfg, tiny_train_cfg, _cache(blobs), epochs=1, device=torch.device("meta"))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_stage_runs_on_cuda_with_a_half_precision_cache(blobs, tiny_model_cfg, tiny_train_cfg) -> None:
    cache = CaseCache.from_arrays([i for i, _ in blobs], [label for _, label in blobs], "cuda")
    assert cache.images.dtype == torch.float16
    cfg = tiny_train_cfg.model_copy(update={"precision": "auto", "device": "cuda"})
    model, result = _train(tiny_model_cfg, cfg, cache, epochs=3, device=torch.device("cuda"))
    assert next(model.parameters()).is_cuda
    assert all(0 < entry["loss"] < 1 for entry in result.history)


def test_a_loss_term_is_added_to_every_step(blobs, tiny_model_cfg, tiny_train_cfg) -> None:
    cache = _cache(blobs)
    plain_model, plain = _train(tiny_model_cfg, tiny_train_cfg, cache, epochs=2)
    seen: list[tuple[int, ...]] = []

    def constant(model, images, labels, prediction) -> torch.Tensor:
        seen.append(tuple(prediction.shape))
        return torch.tensor(0.25)  # no gradient: the same weights, a loss higher by 0.25

    shifted_model, shifted = _train(tiny_model_cfg, tiny_train_cfg, cache, epochs=2, loss_term=constant)
    assert len(seen) == 2 and seen[0][0] == tiny_train_cfg.cases_per_step * tiny_train_cfg.patches_per_case
    assert _same_weights(plain_model, shifted_model)
    for a, b in zip(plain.history, shifted.history, strict=True):
        assert b["loss"] == pytest.approx(a["loss"] + 0.25, abs=1e-6)

    def pull_to_zero(model, images, labels, prediction) -> torch.Tensor:
        return torch.stack([(p**2).sum() for p in model.parameters()]).sum()

    pulled_model, _ = _train(tiny_model_cfg, tiny_train_cfg, cache, epochs=2, loss_term=pull_to_zero)
    norm = [sum(float((p.detach() ** 2).sum()) for p in m.parameters()) for m in (plain_model, pulled_model)]
    assert norm[1] < norm[0]  # its gradient reaches the optimizer


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_step_with_a_loss_term_does_not_synchronise_the_host(tiny_model_cfg, tiny_train_cfg) -> None:
    from mscl.engine.trainer import make_optimizer, optimizer_step

    model = build_model(tiny_model_cfg, seed=0).cuda()
    anchor = {n: p.detach().clone() for n, p in model.named_parameters()}

    def anchored(model, images, labels, prediction) -> torch.Tensor:
        return 0.01 * torch.stack([((p - anchor[n]) ** 2).sum() for n, p in model.named_parameters()]).sum()

    cfg = tiny_train_cfg.model_copy(update={"precision": "auto", "device": "cuda"})
    optimizer = make_optimizer(model, cfg)
    images = torch.rand(4, 1, *cfg.patch_size, device="cuda")
    labels = (images > 0.9).float()
    optimizer_step(model, optimizer, images, labels, cfg, anchored)  # warm-up: lazy state, autotuning
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            optimizer_step(model, optimizer, images, labels, cfg, anchored)
    finally:
        torch.cuda.set_sync_debug_mode(0)


@pytest.mark.parametrize(
    ("cases", "minimum", "expected"), [(3, 0, 3), (3, 3, 3), (3, 7, 9), (2, 8, 8), (10, 8, 10)]
)
def test_epoch_length_is_whole_passes_reaching_the_minimum(cases: int, minimum: int, expected: int) -> None:
    assert epoch_length(cases, minimum) == expected


def test_a_small_stage_repeats_its_cases_up_to_the_minimum(
    monkeypatch, tiny_model_cfg, tiny_train_cfg
) -> None:
    import mscl.engine.trainer as trainer

    visited: list[list[int]] = []
    real_sample = trainer.sample_patches

    def spy(cache, case_idx, *args, **kwargs):
        visited.append(case_idx[:: tiny_train_cfg.patches_per_case].tolist())
        return real_sample(cache, case_idx, *args, **kwargs)

    monkeypatch.setattr(trainer, "sample_patches", spy)
    cache = _cache([blob_case(seed) for seed in range(3)])
    cfg = tiny_train_cfg.model_copy(update={"min_cases_per_epoch": 7, "cases_per_step": 2})
    ticks: list[tuple[int, int]] = []
    _, result = _train(
        tiny_model_cfg, cfg, cache, epochs=2, progress=lambda done, total: ticks.append((done, total))
    )
    assert result.steps == 10 and ticks[-1] == (10, 10)  # 9 cases an epoch, 2 a step: 5 steps
    epoch = [case for step in visited[:5] for case in step]
    assert [sorted(epoch[i : i + 3]) for i in (0, 3, 6)] == [[0, 1, 2]] * 3  # three whole passes
    assert epoch[:3] != epoch[3:6] or epoch[3:6] != epoch[6:9]  # each pass in its own order
    for entry in result.history:
        assert entry["patches_per_s"] == pytest.approx(9 * cfg.patches_per_case / entry["seconds"])
        assert 0 < entry["loss"] < 1
