"""The replay policy (quota, byte budget, selection, determinism) and ReplayMemory over a backend."""

from __future__ import annotations

import random

import numpy as np
import pytest

from mscl.config import MemoryConfig
from mscl.errors import MemoryBackendError
from mscl.memory_backends.ram import RamBackend
from mscl.strategies.replay_memory import CaseInfo, ReplayMemory, ReplayPolicy
from tests.memory_backends.conftest import sample


def cases(center: str, n: int, nbytes: int = 100) -> list[CaseInfo]:
    """``n`` candidates whose lesion load grows with their index."""
    return [
        CaseInfo(f"{center}-{i:02d}", f"{center}-s{i:02d}", center, "FLAIR", 10 * i, nbytes) for i in range(n)
    ]


def ids(policy: ReplayPolicy, candidates: list[CaseInfo]) -> list[str]:
    return [item.case.id for item in policy.select(candidates)]


def test_quota_per_center_and_whole_center_when_smaller() -> None:
    chosen = ReplayPolicy(quota=5).select(cases("BWH", 30) + cases("AMU", 3))
    per_center = {c: [s for s in chosen if s.case.center == c] for c in ("BWH", "AMU")}
    assert len(per_center["BWH"]) == 5 and len(per_center["AMU"]) == 3
    assert {s.reason for s in per_center["AMU"]} == {
        "whole center 1/3",
        "whole center 2/3",
        "whole center 3/3",
    }
    assert per_center["BWH"][2].reason == "random 3/5 (seed 0)"


def test_paper_default_keeps_twenty() -> None:
    assert len(ReplayPolicy().select(cases("BWH", 64))) == 20


def test_deterministic_and_independent_of_input_order() -> None:
    candidates = cases("BWH", 40) + cases("Karo", 25)
    shuffled = random.Random(1).sample(candidates, len(candidates))
    for selection in ("random", "lesion_stratified"):
        policy = ReplayPolicy(quota=6, selection=selection, seed=3)
        assert ids(policy, candidates) == ids(policy, shuffled) == ids(policy, list(reversed(candidates)))
    assert ids(ReplayPolicy(quota=6, seed=0), candidates) != ids(ReplayPolicy(quota=6, seed=1), candidates)


def test_lesion_stratified_spreads_over_the_load_range() -> None:
    chosen = ReplayPolicy(quota=5, selection="lesion_stratified").select(cases("BWH", 50))
    loads = [s.case.lesion_voxels for s in chosen]
    assert [load // 100 for load in loads] == [0, 1, 2, 3, 4]  # one case in each fifth of the 0..490 range
    assert chosen[1].reason.startswith("lesion quantile 2/5 (100-190 voxels")


def test_byte_budget_caps_each_center() -> None:
    candidates = cases("BWH", 10, nbytes=100) + cases("NIH", 10, nbytes=100)
    chosen = ReplayPolicy(quota=8, byte_budget=350).select(candidates)
    assert [sum(s.case.center == c for s in chosen) for c in ("BWH", "NIH")] == [3, 3]
    big = [*cases("AMU", 2, nbytes=500), CaseInfo("AMU-small", "s", "AMU", "FLAIR", 0, 50)]
    assert ids(ReplayPolicy(byte_budget=100), big) == ["AMU-small"]


def test_invalid_policies_are_refused() -> None:
    with pytest.raises(MemoryBackendError, match="quota"):
        ReplayPolicy(quota=0)
    with pytest.raises(MemoryBackendError, match="selection"):
        ReplayPolicy(selection="best")  # type: ignore[arg-type]
    with pytest.raises(MemoryBackendError, match=r"duplicate case ids BWH-00, BWH-01$"):
        ReplayPolicy().select(cases("BWH", 3) + cases("BWH", 2))


def test_policy_from_config() -> None:
    config = MemoryConfig(per_center_quota=7, byte_budget=10**6, selection="lesion_stratified")
    assert ReplayPolicy.from_config(config, seed=4) == ReplayPolicy(7, 10**6, "lesion_stratified", 4)


def _loader(case_id: str) -> tuple[np.ndarray, np.ndarray]:
    return sample(sum(map(ord, case_id)))


def test_replay_memory_fills_reloads_and_reports() -> None:
    memory = ReplayMemory(RamBackend(), ReplayPolicy(quota=4, seed=0))
    stored = memory.add_center("BWH", cases("BWH", 10), _loader)
    memory.add_center("AMU", cases("AMU", 2), _loader)
    assert len(stored) == 4 and memory.centers() == ["AMU", "BWH"]
    loaded = memory.load_all()
    assert len(loaded) == 6
    image, _, meta = loaded[-1]
    assert np.array_equal(image, _loader(memory.backend.keys()[-1])[0]) and meta.center == "BWH"
    rows = memory.manifest()
    assert {row["reason"] for row in rows if row["center"] == "AMU"} == {
        "whole center 1/2",
        "whole center 2/2",
    }
    assert rows[0].keys() >= {"key", "center", "subject", "reason", "image_sha256", "label_sha256", "bytes"}
    assert sum(row["bytes"] for row in rows) == memory.backend.nbytes


def test_adding_a_center_again_replaces_its_samples() -> None:
    memory = ReplayMemory(RamBackend(), ReplayPolicy(quota=3, seed=0))
    memory.add_center("BWH", cases("BWH", 10), _loader)
    first = memory.backend.keys()
    memory.policy = ReplayPolicy(quota=3, seed=1)
    memory.add_center("BWH", cases("BWH", 10), _loader)
    assert len(memory.backend) == 3 and memory.backend.keys() != first


def test_cases_of_another_center_are_refused() -> None:
    memory = ReplayMemory(RamBackend(), ReplayPolicy())
    with pytest.raises(MemoryBackendError, match="NIH-00 are not of center 'BWH'"):
        memory.add_center("BWH", cases("NIH", 1), _loader)
