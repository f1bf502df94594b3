"""The strategy contract, run over every strategy registered under ``mscl.strategies``.

A strategy passes when it declares its name, kind and config section; plans well-formed stages; gives the
same R matrices (every metric) and the same state for the same seed; returns loss terms that are scalar
tensors; keeps a state that survives a checkpoint (``torch.save`` and a ``weights_only`` load); and, once
interrupted in its last stage and resumed from MLflow, ends with the R matrices of an uninterrupted study.
The studies run on a tiny blob dataset (three centers) with a tiny network, on the CPU.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, get_args

import numpy as np
import pytest
import torch

from mscl.config import ExperimentConfig, StrategyOptions, load_config
from mscl.data.dataset import PreparedDataset
from mscl.errors import StudyInterrupted
from mscl.protocol.kinds import SEQUENTIAL_KINDS, RMatrixKind
from mscl.protocol.loop import plan_study, run_study
from mscl.protocol.observers import StudyObserver
from mscl.protocol.results import StageOutcome, StudyResult
from mscl.strategies import STRATEGIES
from mscl.strategies.base import StagePlan, Strategy
from mscl.testing.data import CENTERS, build_blob_dataset

TINY = {
    "model": {"channels": [2, 4, 8]},
    "train": {"patch_size": [8, 8, 8], "epochs": 2, "checkpoint_every": 1, "device": "cpu"},
    "memory": {"per_center_quota": 1},
}


@pytest.fixture(scope="module", params=STRATEGIES.names())
def strategy_name(request: pytest.FixtureRequest) -> str:
    """Every registered strategy: a new one gets the whole contract suite."""
    return str(request.param)


@pytest.fixture(scope="session")
def contract_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The blob dataset: three centers (4, 3, 3 subjects), the last one T2w with dark lesions."""
    return build_blob_dataset(tmp_path_factory.mktemp("contract") / "dataset")


def contract_config(strategy: str, folder: Path, *overrides: Mapping[str, Any]) -> ExperimentConfig:
    """The tiny preset, shrunk further, with its tracking store, resume points and memory under ``folder``;
    ``overrides`` (nested mappings) applied last."""
    folder.mkdir(parents=True, exist_ok=True)
    local = {
        "strategy": {"name": strategy},
        "tracking": {"uri": f"sqlite:///{folder}/mlflow.db", "experiment": "contract"},
        "train": {"checkpoint_dir": str(folder / "checkpoints")},
        "memory": {"path": str(folder / "memory")},
    }
    return load_config("tiny", overrides=[TINY, local, *overrides])


class _Outcomes(StudyObserver):
    """Keeps every finished stage's outcome."""

    def __init__(self) -> None:
        self.outcomes: list[StageOutcome] = []

    def stage_finished(self, outcome: StageOutcome, model: torch.nn.Module) -> None:
        self.outcomes.append(outcome)


class _InterruptLastStage(StudyObserver):
    """Interrupts the study after the first epoch of its last stage (a mid-stage resume point exists)."""

    def __init__(self, last: int) -> None:
        self.last = last

    def epoch_finished(self, stage: StagePlan, epoch: int, metrics: dict[str, float]) -> None:
        if stage.index == self.last and epoch == 0:
            raise KeyboardInterrupt


Studied = tuple[StudyResult, list[StageOutcome], list[Any]]
"""A study's result, every stage outcome, and every loss term the strategy returned."""


def _study(dataset: Path, cfg: ExperimentConfig) -> Studied:
    """One in-process study: its result, every stage outcome, and every loss term the strategy returned."""
    terms: list[Any] = []
    recorder = _Outcomes()
    with PreparedDataset(dataset) as data:
        setup = plan_study(data, cfg, cfg.protocol.seeds[0])
        inner = setup.strategy.loss_term

        def recording(*args: Any) -> Any:
            term = inner(*args)
            terms.append(term)
            return term

        setup.strategy.loss_term = recording  # type: ignore[method-assign,assignment]
        result = run_study(data, cfg, cfg.protocol.seeds[0], recorder, setup)
    return result, recorder.outcomes, terms


def _assert_same_matrices(first: StudyResult, second: StudyResult) -> None:
    assert first.metrics == second.metrics
    for metric in first.metrics:
        np.testing.assert_array_equal(first.matrix_of(metric), second.matrix_of(metric), err_msg=metric)


def _assert_same_state(first: Any, second: Any, where: str = "state") -> None:
    if isinstance(first, torch.Tensor):
        assert isinstance(second, torch.Tensor) and torch.equal(first.cpu(), second.cpu()), where
    elif isinstance(first, np.ndarray):
        np.testing.assert_array_equal(first, second, err_msg=where)
    elif isinstance(first, dict):
        assert isinstance(second, dict) and set(first) == set(second), where
        for key in first:
            _assert_same_state(first[key], second[key], f"{where}.{key}")
    elif isinstance(first, list | tuple):
        assert len(first) == len(second), where
        for i, (a, b) in enumerate(zip(first, second, strict=True)):
            _assert_same_state(a, b, f"{where}[{i}]")
    else:
        assert first == second, where


def test_declares_its_name_kind_and_config_section(strategy_name: str) -> None:
    strategy = STRATEGIES.get(strategy_name)
    assert issubclass(strategy, Strategy)
    assert strategy.name == strategy_name, "the class's name must be its entry-point name"
    assert strategy.kind in get_args(RMatrixKind)
    assert issubclass(strategy.options, StrategyOptions)
    cfg = load_config("tiny", overrides=[f"strategy.name={strategy_name}"])
    assert isinstance(cfg.strategy, strategy.options)
    knobs = {
        info.serialization_alias or info.alias or name for name, info in strategy.options.model_fields.items()
    }
    logged = {key.split(".")[1] for key in cfg.flat() if key.startswith("strategy.")}
    assert knobs == logged, "MLflow params carry every knob of the section"


def test_plans_well_formed_stages(strategy_name: str, tmp_path: Path) -> None:
    order = list(CENTERS)
    strategy = STRATEGIES.get(strategy_name)(contract_config(strategy_name, tmp_path), 0)
    try:
        stages = strategy.plan(order)
    finally:
        strategy.close()
    assert [s.index for s in stages] == list(range(len(stages))) and stages
    assert stages[0].fresh, "the first stage cannot carry weights from nowhere"
    assert all(set(s.train_centers) <= set(order) and s.train_centers for s in stages)
    if strategy.kind in SEQUENTIAL_KINDS or strategy.kind == "single":
        assert [s.center for s in stages] == order, "one stage per center, in training order"


@pytest.fixture(scope="module")
def studied_twice(
    strategy_name: str, contract_dataset: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Studied, Studied]:
    """The same study (seed 0) run twice in this process."""
    cfg = contract_config(strategy_name, tmp_path_factory.mktemp(strategy_name))
    return _study(contract_dataset, cfg), _study(contract_dataset, cfg)


def test_same_seed_gives_the_same_r_matrices_and_state(studied_twice: tuple[Studied, Studied]) -> None:
    (first, outcomes, terms), (again, outcomes_again, _) = studied_twice
    _assert_same_matrices(first, again)
    for one, other in zip(outcomes, outcomes_again, strict=True):
        _assert_same_state(one.strategy_state, other.strategy_state)
    for term in terms:
        assert term is None or (isinstance(term, torch.Tensor) and term.ndim == 0), "a scalar loss term"


def test_its_state_survives_a_checkpoint(
    strategy_name: str, studied_twice: tuple[Studied, Studied], tmp_path: Path
) -> None:
    cfg = contract_config(strategy_name, tmp_path)
    (_, outcomes, _), _ = studied_twice
    for outcome in outcomes:
        buffer = io.BytesIO()
        torch.save({"strategy": outcome.strategy_state}, buffer)
        buffer.seek(0)
        loaded = torch.load(buffer, map_location="cpu", weights_only=True)["strategy"]
        fresh = STRATEGIES.get(strategy_name)(cfg, 0)
        try:
            fresh.load_state_dict(loaded)
            _assert_same_state(outcome.strategy_state, fresh.state_dict())
        finally:
            fresh.close()


def test_a_resumed_study_gives_the_uninterrupted_r_matrices(
    strategy_name: str, contract_dataset: Path, tmp_path: Path
) -> None:
    assert_resume_is_exact(contract_dataset, tmp_path, strategy_name)


def assert_resume_is_exact(dataset: Path, folder: Path, strategy: str, *overrides: Mapping[str, Any]) -> None:
    """A study interrupted after the first epoch of its last stage, resumed from MLflow, ends with the
    R matrices (every metric) of the same study run uninterrupted (:func:`contract_config` settings)."""
    from mlflow.tracking import MlflowClient

    from mscl.api import resume_study, train_study
    from mscl.tracking.queries import is_parent

    (reference,) = train_study(dataset, contract_config(strategy, folder / "ref", *overrides), quiet=True)
    cfg = contract_config(strategy, folder / "cut", *overrides)
    last = len(reference.stages) - 1
    with pytest.raises(StudyInterrupted):
        train_study(dataset, cfg, quiet=True, observers=[_InterruptLastStage(last)])
    client = MlflowClient(cfg.tracking.uri)
    experiment = client.get_experiment_by_name(cfg.tracking.experiment)
    assert experiment is not None
    [parent] = [r for r in client.search_runs([experiment.experiment_id]) if is_parent(r)]
    assert parent.info.status == "KILLED"
    resumed = resume_study(parent.info.run_id, dataset, tracking_uri=cfg.tracking.uri, quiet=True)
    _assert_same_matrices(reference, resumed)


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """One intra-op thread per study: tiny tensors gain nothing from more, and on a busy shared CPU OpenMP
    barriers make a multi-threaded step many times slower (a reference and its resumed study run alike)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
