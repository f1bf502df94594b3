"""Where an end-to-end training step spends its time: patch sampling versus the model step, plus a profile.

    python benchmarks/profile_stage.py [PRESET] [STEPS]      (default: paper 50)

On random brain-sized volumes of the preset (as ``mscl bench`` without ``--data``), times ``STEPS`` steps
of patch sampling alone, of the optimizer step alone on fixed patches, and of both together; then prints
torch.profiler's top operations of the combined steps, by device time on CUDA, by CPU time otherwise.
"""

from __future__ import annotations

import sys

import torch
from torch.profiler import ProfilerActivity, profile

from mscl.bench.measure import build_cache, timed
from mscl.bench.runner import synthetic_cases
from mscl.config import load_config
from mscl.engine.device import configure_determinism, resolve_device
from mscl.engine.sampling import sample_patches
from mscl.engine.trainer import make_optimizer, optimizer_step
from mscl.models.unet import build_model


def main(preset: str, steps: int) -> None:
    cfg = load_config(preset)
    train = cfg.train
    device = resolve_device(train.device)
    configure_determinism(train.deterministic, device)
    cache, _ = build_cache(synthetic_cases(cfg, 16), cfg, device)
    model = build_model(cfg.model, seed=0).to(device)
    optimizer = make_optimizer(model, train)
    generator = torch.Generator(device=device).manual_seed(0)
    cases = torch.arange(train.cases_per_step, device=device)
    case_idx = cases[:, None].expand(-1, train.patches_per_case).reshape(-1)

    def sample() -> tuple[torch.Tensor, torch.Tensor]:
        return sample_patches(cache, case_idx, train.patch_size, train.lesion_fraction, generator)

    fixed = sample()

    def sampling_only() -> None:
        for _ in range(steps):
            sample()

    def model_only() -> None:
        for _ in range(steps):
            optimizer_step(model, optimizer, *fixed, train)

    def end_to_end() -> None:
        for _ in range(steps):
            optimizer_step(model, optimizer, *sample(), train)

    end_to_end()  # warm-up, cuDNN autotuning
    patches = steps * case_idx.numel()
    seconds = {name: timed(device, work) for name, work in
               (("sampling", sampling_only), ("model", model_only), ("end to end", end_to_end))}  # fmt: skip
    print(f"{preset} on {device}: {steps} steps of {case_idx.numel()} patches {tuple(train.patch_size)}")
    for name, value in seconds.items():
        print(f"  {name:<11} {value * 1000 / steps:8.2f} ms/step  {patches / value:9.1f} patches/s")
    print(f"  end to end / model only: {seconds['model'] / seconds['end to end']:.3f}")
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        timed(device, end_to_end)
    sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(prof.key_averages().table(sort_by=sort, row_limit=15, max_name_column_width=50))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "paper", int(sys.argv[2]) if len(sys.argv) > 2 else 50)
