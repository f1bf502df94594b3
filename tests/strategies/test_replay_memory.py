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


def test_reservoir_needs_a_capacity_and_only_it_does() -> None:
    with pytest.raises(MemoryBackendError, match="capacity >= 1 is required by reservoir"):
        ReplayPolicy(selection="reservoir")
    with pytest.raises(MemoryBackendError, match="capacity"):
        ReplayPolicy(capacity=5)
    with pytest.raises(ValueError, match="capacity is required by selection reservoir"):
        MemoryConfig(selection="reservoir")
    config = MemoryConfig(selection="reservoir", capacity=6)
    assert ReplayPolicy.from_config(config, seed=2) == ReplayPolicy(20, None, "reservoir", 2, 6)


def test_reservoir_keeps_capacity_cases_over_the_stream() -> None:
    policy = ReplayPolicy(selection="reservoir", capacity=4, seed=3)
    stream = [cases("BWH", 3), cases("AMU", 5), cases("NIH", 6)]
    assert [i.case.id for i in policy.select_stream(stream[:1])] == [
        i.case.id for i in policy.select_stream(stream[:1])
    ]
    assert len(policy.select_stream(stream[:1])) == 3  # filling: fewer cases than capacity, all kept
    kept = policy.select_stream(stream)
    assert len(kept) == 4 and len({i.case.id for i in kept}) == 4
    assert all(i.reason.startswith("reservoir: case ") for i in kept)
    shuffled = [list(reversed(c)) for c in stream]
    assert [i.case.id for i in policy.select_stream(shuffled)] == [i.case.id for i in kept]


def test_reservoir_gives_every_case_of_the_stream_the_same_chance() -> None:
    stream = [cases("BWH", 4), cases("AMU", 4), cases("NIH", 4)]  # 12 cases, capacity 3: each kept w.p. 1/4
    counts: dict[str, int] = {}
    trials = 4000
    for seed in range(trials):
        for item in ReplayPolicy(selection="reservoir", capacity=3, seed=seed).select_stream(stream):
            counts[item.case.id] = counts.get(item.case.id, 0) + 1
    assert len(counts) == 12
    expected, spread = trials / 4, 4 * (trials * 0.25 * 0.75) ** 0.5  # 4 standard deviations
    assert all(abs(n - expected) < spread for n in counts.values()), counts
    by_center = {c: sum(n for k, n in counts.items() if k.startswith(c)) for c in ("BWH", "AMU", "NIH")}
    assert max(by_center.values()) - min(by_center.values()) < 2 * spread  # no favour for early or late


def test_reservoir_byte_budget_caps_the_whole_memory() -> None:
    policy = ReplayPolicy(selection="reservoir", capacity=10, byte_budget=450, seed=0)
    kept = policy.select_stream([cases("BWH", 6, nbytes=100), cases("AMU", 6, nbytes=100)])
    assert len(kept) == 4 and sum(i.case.nbytes for i in kept) <= 450


def test_a_reservoir_memory_evicts_earlier_centers_cases() -> None:
    memory = ReplayMemory(RamBackend(), ReplayPolicy(selection="reservoir", capacity=4, seed=1))
    memory.add_center("BWH", cases("BWH", 4), _loader)
    assert sorted(memory.backend.keys()) == [f"BWH-{i:02d}" for i in range(4)]
    memory.add_center("AMU", cases("AMU", 12), _loader)
    expected = memory.policy.select_stream([cases("BWH", 4), cases("AMU", 12)])
    assert sorted(memory.backend.keys()) == sorted(i.case.id for i in expected)
    assert "AMU" in memory.centers() and len(memory.backend) == 4
    memory.clear()
    assert len(memory.backend) == 0 and memory.stream == {}


def test_per_center_policies_give_the_same_memory_through_the_stream() -> None:
    policy = ReplayPolicy(quota=2, seed=5, selection="lesion_stratified")
    stream = [cases("BWH", 7), cases("AMU", 5)]
    assert policy.select_stream(stream) == policy.select(stream[0]) + policy.select(stream[1])
