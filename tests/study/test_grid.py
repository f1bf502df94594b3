"""The grid of `mscl study`: its cells, their configurations, the study section, local resources."""

from __future__ import annotations

from pathlib import Path

import pytest

from mscl.errors import ConfigError
from mscl.study.grid import Cell, StudySettings, cell_configs, grid_cells, study_settings
from mscl.study.scheduler import cluster_resources, local_resources


def test_order_independent_strategies_get_one_cell_per_seed() -> None:
    settings = StudySettings(strategies=["finetune", "joint"], seeds=[0, 1], orders=["descending", "random"])
    assert grid_cells(settings) == [
        Cell("finetune", 0, "descending"),
        Cell("finetune", 0, "random"),
        Cell("finetune", 1, "descending"),
        Cell("finetune", 1, "random"),
        Cell("joint", 0, "descending"),
        Cell("joint", 1, "descending"),
    ]
    assert Cell("replay", 3, "random").key == "replay/seed3/random"


def test_an_unknown_strategy_is_named_with_the_registered_ones() -> None:
    with pytest.raises(ConfigError, match=r"fintune.*finetune"):
        grid_cells(StudySettings(strategies=["fintune"]))


def test_each_cell_resolves_like_mscl_train(tmp_path: Path) -> None:
    cells = grid_cells(StudySettings(strategies=["replay", "finetune"], seeds=[4], orders=["random"]))
    configs = cell_configs(cells, "tiny", None, ["train.epochs=3"])
    replay = configs[Cell("replay", 4, "random")]
    assert replay.strategy.name == "replay" and replay.protocol.seeds == [4]
    assert replay.protocol.order == "random" and replay.train.epochs == 3
    assert configs[Cell("finetune", 4, "random")].strategy.name == "finetune"


def test_a_cell_that_does_not_validate_is_named(tmp_path: Path) -> None:
    config = tmp_path / "study.yaml"
    config.write_text("study: {strategies: [replay]}\nstrategy: {name: replay, lwf: {weight: 1.0}}\n")
    cells = grid_cells(StudySettings(strategies=["replay", "finetune"]))
    with pytest.raises(ConfigError, match=r"^finetune/seed0/descending: .*study.yaml: strategy: lwf"):
        cell_configs(cells, "tiny", config, [])


@pytest.mark.parametrize(
    ("section", "problem"),
    [
        ({"strategies": []}, "study.strategies"),
        ({"strategies": ["replay", "replay"]}, "study.strategies: .*repeat"),
        ({"strategies": ["replay"], "seeds": [1, 1]}, "study.seeds"),
        ({"strategies": ["replay"], "gpus_per_study": 0}, "study.gpus_per_study"),
        ({"strategies": ["replay"], "wokers": 2}, "study.wokers"),
    ],
)
def test_bad_study_sections_are_named(section: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigError, match=f"^study.yaml: .*{problem}"):
        study_settings(section, "study.yaml")


def test_local_resources_split_the_machine() -> None:
    cpu = StudySettings(strategies=["replay"])
    assert local_resources(cpu, cores=16, gpus=0) == local_resources(cpu, 16, 0)
    assert (local_resources(cpu, 16, 0).workers, local_resources(cpu, 16, 0).cpus_per_study) == (1, 16)
    four = cpu.model_copy(update={"workers": 4})
    assert (local_resources(four, 2, 0).workers, local_resources(four, 2, 0).cpus_per_study) == (4, 1)
    gpu = local_resources(cpu, cores=16, gpus=2)
    assert (gpu.workers, gpu.cpus_per_study, gpu.gpus_per_study) == (2, 8, 1.0)
    packed = local_resources(cpu.model_copy(update={"gpus_per_study": 0.5}), cores=16, gpus=1)
    assert (packed.workers, packed.cpus_per_study, packed.gpus_per_study) == (2, 8, 0.5)
    with pytest.raises(ConfigError, match="no GPU"):
        local_resources(cpu.model_copy(update={"gpus_per_study": 1}), cores=2, gpus=0)


def test_a_cluster_cell_asks_for_a_gpu_where_there_are_gpus() -> None:
    settings = StudySettings(strategies=["replay"], address="auto")
    assert cluster_resources(settings, {"CPU": 64, "GPU": 8}).gpus_per_study == 1.0
    assert cluster_resources(settings, {"CPU": 64}).gpus_per_study == 0.0
    assert cluster_resources(settings.model_copy(update={"cpus_per_study": 4}), {}).cpus_per_study == 4
