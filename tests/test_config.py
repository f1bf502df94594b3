"""The experiment configuration: presets, files, overrides, validation messages."""

from pathlib import Path

import pytest

from mscl.config import PRESETS, ExperimentConfig, load_config, parse_override
from mscl.errors import ConfigError


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_validates(preset: str) -> None:
    cfg = load_config(preset)
    assert cfg.preset == preset
    assert all(p % 2**cfg.model.levels == 0 for p in cfg.train.patch_size)


def test_paper_preset_has_the_paper_settings() -> None:
    cfg = load_config("paper")
    assert cfg.model.channels == (32, 64, 128, 256)
    assert cfg.train.patch_size == (64, 64, 64)
    assert (cfg.train.patches_per_case, cfg.train.cases_per_step) == (4, 4)
    assert (cfg.train.lr, cfg.train.weight_decay, cfg.train.epochs) == (1e-4, 1e-5, 150)
    assert (cfg.train.scheduler_step, cfg.train.scheduler_gamma) == (50, 0.5)
    assert cfg.memory.per_center_quota == 20
    assert cfg.strategy.carry_over == "encoder"  # the paper carries the encoder, not the decoder
    assert cfg.protocol.seeds == list(range(9))


def test_file_then_overrides_win_over_preset(tmp_path: Path) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text("preset: tiny\ntrain:\n  epochs: 7\nstrategy:\n  name: finetune\n")
    cfg = load_config(config_file=path, overrides=["train.epochs=9", {"memory": {"backend": "zarr"}}])
    assert cfg.preset == "tiny"
    assert cfg.train.epochs == 9
    assert cfg.strategy.name == "finetune"
    assert cfg.memory.backend == "zarr"
    assert cfg.model.channels == load_config("tiny").model.channels


def test_problems_are_reported_with_their_path(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  epochs: 0\ndata:\n  test_fraction: 1.5\nnope: 1\n")
    with pytest.raises(ConfigError) as info:
        load_config("tiny", path)
    message = str(info.value)
    assert "train.epochs: must be >= 1" in message
    assert "data.test_fraction: must be < 1" in message
    assert "nope: unknown key" in message


def test_patch_size_must_fit_the_unet_depth() -> None:
    with pytest.raises(ConfigError, match="divisible by 2\\*\\*levels = 8"):
        load_config("tiny", overrides=["train.patch_size=[12, 16, 16]"])


def test_every_synthetic_center_keeps_a_test_subject() -> None:
    with pytest.raises(ConfigError, match=r"synthetic\.min_per_center: must be >= 2"):
        load_config("paper", overrides=["synthetic.min_per_center=1"])
    scaled = load_config("paper", overrides=["synthetic.count_scale=0.05"]).synthetic
    assert scaled.min_per_center >= 2


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("train.epochs", "expected section.key=value"),
        ("=3", "expected section.key=value"),
        ("train..epochs=3", "expected section.key=value"),
        ("train.epochs=[", r"override 'train.epochs=\[': the value is not valid YAML"),
    ],
)
def test_malformed_overrides(text: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        parse_override(text)


def test_unknown_preset_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown preset 'huge'"):
        load_config("huge")
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(config_file=tmp_path / "missing.yaml")


def test_yaml_round_trip_and_flat_params() -> None:
    cfg = load_config("quick")
    import yaml

    again = ExperimentConfig.model_validate(yaml.safe_load(cfg.to_yaml()))
    assert again == cfg
    flat = cfg.flat()
    assert flat["train.epochs"] == str(cfg.train.epochs)
    assert flat["model.channels"] == "[8, 16, 32, 64]"


@pytest.mark.parametrize(
    "overrides",
    [["train=3"], ["train=3", "train.epochs=2"], ["train=3", {"train": {}}], [{"memory": "hdf5"}]],
    ids=["scalar", "scalar-then-key", "scalar-then-cli-flags", "mapping-override"],
)
def test_a_section_replaced_by_a_scalar_is_refused(overrides: list) -> None:
    """Merged over later, an emptied section would silently bring back the defaults (150 epochs, 64^3)."""
    section = "memory" if isinstance(overrides[0], dict) else "train"
    kind = "str" if section == "memory" else "int"
    with pytest.raises(ConfigError, match=f"{section}: must be a mapping of settings, not {kind}$"):
        load_config("tiny", overrides=overrides)


def test_a_config_file_section_must_be_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("preset: tiny\ntrain: 3\n")
    with pytest.raises(ConfigError, match=f"{path}: train: must be a mapping of settings, not int"):
        load_config(config_file=path)


def test_resume_settings_resolve_like_every_command() -> None:
    from mscl.api import resolve_against

    logged = load_config("tiny", overrides=["train.epochs=3"])
    assert resolve_against(logged, None, None, ["train.epochs=3"]) == logged
    assert resolve_against(logged, None, None, [{"train": {}}]) == logged
    with pytest.raises(ConfigError, match="train: must be a mapping of settings, not int"):
        resolve_against(logged, None, None, ["train=3", {"train": {}}])
    with pytest.raises(ConfigError, match="not valid YAML"):
        resolve_against(logged, None, None, ["train.epochs=["])
