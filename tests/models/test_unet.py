"""The residual UNet: paper size, per-sample normalised ReLU, encoder/decoder split and decoder re-init."""

from __future__ import annotations

import pytest
import torch

from mscl.config import ModelConfig
from mscl.models.unet import (
    NormReLU,
    build_model,
    count_parameters,
    encoder_parameter_names,
    reinit_decoder,
    split_encoder_decoder,
)

TINY = ModelConfig(channels=(4, 8, 16), num_res_units=1)


def test_paper_model_has_about_4_7_million_parameters() -> None:
    assert count_parameters(build_model(ModelConfig())) == 4_738_058


def test_output_keeps_the_input_shape_and_range() -> None:
    model = build_model(TINY, seed=0)
    out = model(torch.randn(2, 1, 16, 16, 8))
    assert out.shape == (2, 1, 16, 16, 8)
    assert out.min() >= 0 and out.max() <= 1
    assert torch.allclose(out.flatten(1).amax(dim=1), torch.ones(2), atol=1e-5)


def test_sigmoid_head() -> None:
    model = build_model(TINY.model_copy(update={"activation": "sigmoid"}), seed=0)
    logits = model.unet(torch.ones(1, 1, 8, 8, 8))
    assert torch.equal(model(torch.ones(1, 1, 8, 8, 8)), torch.sigmoid(logits))


def test_normrelu_divides_each_sample_by_its_own_maximum() -> None:
    x = torch.tensor([[-1.0, 2.0, 4.0], [0.5, -3.0, 0.25], [-1.0, -2.0, -0.5]]).view(3, 1, 3, 1, 1)
    out = NormReLU()(x).view(3, 3)
    expected = torch.tensor([[0.0, 0.5, 1.0], [1.0, 0.0, 0.5], [0.0, 0.0, 0.0]])
    assert torch.allclose(out, expected, atol=1e-5)


def test_a_sample_output_does_not_depend_on_its_batch_mates() -> None:
    model = build_model(TINY, seed=0).eval()
    sample = torch.randn(1, 1, 8, 8, 8, generator=torch.Generator().manual_seed(1))
    mates = 10 * torch.randn(3, 1, 8, 8, 8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        alone = model(sample)
        together = model(torch.cat([mates[:2], sample, mates[2:]]))
    assert torch.allclose(alone[0], together[2], atol=1e-6)


def test_seed_fixes_the_initial_weights_without_touching_the_global_generator() -> None:
    before = torch.random.get_rng_state()
    first, second, other = build_model(TINY, seed=3), build_model(TINY, seed=3), build_model(TINY, seed=4)
    assert torch.equal(torch.random.get_rng_state(), before)
    weights = [torch.cat([p.flatten() for p in m.parameters()]) for m in (first, second, other)]
    assert torch.equal(weights[0], weights[1])
    assert not torch.equal(weights[0], weights[2])


@pytest.mark.parametrize("cfg", [TINY, ModelConfig(channels=(4, 8, 16, 32), num_res_units=0), ModelConfig()])
def test_encoder_and_decoder_partition_the_parameters(cfg: ModelConfig) -> None:
    model = build_model(cfg)
    encoder, decoder = split_encoder_decoder(model)
    names = [name for name, _ in model.named_parameters()]
    assert sorted(encoder + decoder) == sorted(names)
    assert not set(encoder) & set(decoder)
    assert encoder == encoder_parameter_names(model)
    params = dict(model.named_parameters())
    down = [params[n] for n in encoder if n.endswith("conv.weight") and params[n].ndim == 5]
    # Encoder convolutions widen from 1 input channel up to the bottleneck; decoder ones are transposed or
    # narrow back towards the single output channel.
    assert {p.shape[0] for p in down} == set(cfg.channels)
    assert any(p.shape[1] == 1 for p in down)
    assert all("unet.model.0." not in n for n in decoder)
    assert all("unet.model.2." not in n for n in encoder)


def test_reinit_decoder_changes_only_the_decoder() -> None:
    model = build_model(TINY, seed=0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    before = {name: p.clone() for name, p in model.named_parameters()}
    reinit_decoder(model, seed=5)
    encoder, decoder = split_encoder_decoder(model)
    params = dict(model.named_parameters())
    assert all(torch.equal(params[n], before[n]) for n in encoder)
    assert all(not torch.equal(params[n], before[n]) for n in decoder)
    again = build_model(TINY, seed=0)
    reinit_decoder(again, seed=5)
    assert all(torch.equal(params[n], dict(again.named_parameters())[n]) for n in decoder)
