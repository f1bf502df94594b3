"""Replay with each policy in a study: what the memory holds stage by stage, and exact resume."""

from __future__ import annotations

from pathlib import Path

import pytest

from mscl.data.dataset import PreparedDataset
from mscl.protocol.loop import run_study
from mscl.protocol.observers import StudyObserver
from mscl.protocol.results import StageOutcome
from mscl.testing.strategies import assert_resume_is_exact, contract_config

POLICIES = {
    "lesion_stratified": {"memory": {"selection": "lesion_stratified", "per_center_quota": 1}},
    "reservoir": {"memory": {"selection": "reservoir", "capacity": 2}},
}


class Manifests(StudyObserver):
    def __init__(self) -> None:
        self.samples: list[list[dict]] = []

    def stage_finished(self, outcome: StageOutcome, model: object) -> None:
        assert outcome.memory_manifest is not None
        self.samples.append(outcome.memory_manifest["samples"])


def test_a_reservoir_memory_holds_capacity_cases_over_all_centers(blob_dataset: Path, tmp_path: Path) -> None:
    cfg = contract_config("replay", tmp_path, POLICIES["reservoir"])
    manifests = Manifests()
    with PreparedDataset(blob_dataset) as data:
        run_study(data, cfg, 0, manifests)
    sizes = [len(samples) for samples in manifests.samples]
    assert sizes == [2, 2, 2]  # Big's 3 training cases already fill the 2 slots
    assert all(s["reason"].startswith("reservoir: case ") for stage in manifests.samples for s in stage)


@pytest.mark.parametrize("policy", list(POLICIES))
def test_replay_with_each_policy_resumes_exactly(blob_dataset: Path, tmp_path: Path, policy: str) -> None:
    assert_resume_is_exact(blob_dataset, tmp_path, "replay", POLICIES[policy])
