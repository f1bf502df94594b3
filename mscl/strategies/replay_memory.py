"""The replay policy: which cases enter the memory, and the memory built over any backend.

Three policies: ``random`` (the paper: up to ``quota`` cases of every center, seeded), ``lesion_stratified``
(one case per lesion-load quantile bin of the center) and ``reservoir`` (Vitter's algorithm R over the
stream of cases in training order: a memory of ``capacity`` cases in which every case seen so far had the
same chance to stay, no per-center quota). Selection is deterministic given the seed and independent of
input order: candidates are sorted by id before anything random happens, and every kept case records why in
``SampleMeta.reason``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, get_args

import numpy as np

from mscl.config import MemoryConfig, Selection
from mscl.data.manifest import CaseRecord
from mscl.errors import MemoryBackendError, MemoryCorrupted
from mscl.memory_backends.base import MemoryBackend, SampleMeta

Loader = Callable[[str], tuple[np.ndarray, np.ndarray]]
STORED_ITEMSIZE = 2  # prepared volumes are float16


@dataclass(frozen=True)
class CaseInfo:
    """What the policy needs to know about a candidate case (no arrays)."""

    id: str
    subject: str
    center: str
    contrast: str
    lesion_voxels: int
    nbytes: int

    @classmethod
    def from_record(cls, record: CaseRecord) -> CaseInfo:
        """A candidate from a dataset manifest record (image + label, float16)."""
        return cls(
            id=record.id,
            subject=record.subject,
            center=record.center,
            contrast=record.contrast,
            lesion_voxels=record.lesion_voxels,
            nbytes=2 * STORED_ITEMSIZE * int(np.prod(record.shape)),
        )


@dataclass(frozen=True)
class Selected:
    """A kept case and why it was kept."""

    case: CaseInfo
    reason: str


@dataclass(frozen=True)
class ReplayPolicy:
    """Per-center quota, optional per-center byte budget, and how cases are chosen.

    Args:
        quota: Cases kept per center (all of a center that has fewer); not used by ``reservoir``.
        byte_budget: Image + label bytes kept per center at most (``reservoir``: in the whole memory);
            ``None`` for no limit.
        selection: ``random`` (seeded), ``lesion_stratified`` (one case per lesion-load quantile bin) or
            ``reservoir`` (over the stream of cases).
        seed: Seed of every random choice.
        capacity: Cases in the whole memory, ``reservoir`` only.
    """

    quota: int = 20
    byte_budget: int | None = None
    selection: Selection = "random"
    seed: int = 0
    capacity: int | None = None

    def __post_init__(self) -> None:
        if self.quota < 1:
            raise MemoryBackendError(f"replay policy: quota must be >= 1, got {self.quota}")
        if self.byte_budget is not None and self.byte_budget < 1:
            raise MemoryBackendError(f"replay policy: byte_budget must be >= 1, got {self.byte_budget}")
        if self.selection not in get_args(Selection):
            raise MemoryBackendError(f"replay policy: unknown selection {self.selection!r}")
        if (self.selection == "reservoir") != (self.capacity is not None and self.capacity >= 1):
            raise MemoryBackendError(
                "replay policy: a capacity >= 1 is required by reservoir, and only by it"
            )

    @classmethod
    def from_config(cls, config: MemoryConfig, seed: int) -> ReplayPolicy:
        """The policy of ``config.memory`` for one experiment seed."""
        return cls(config.per_center_quota, config.byte_budget, config.selection, seed, config.capacity)

    def select_stream(self, stream: Sequence[Sequence[CaseInfo]]) -> list[Selected]:
        """What the memory holds once the centers of ``stream`` (each one's candidates, in training order)
        have been seen: per center for ``random`` and ``lesion_stratified``, over the stream for
        ``reservoir``."""
        if self.selection == "reservoir":
            return self._reservoir(stream)
        return [item for cases in stream for item in self.select(cases)]

    def _reservoir(self, stream: Sequence[Sequence[CaseInfo]]) -> list[Selected]:
        """Algorithm R: case ``n`` (1-based) replaces a uniformly drawn slot with probability capacity / n."""
        assert self.capacity is not None
        rng = np.random.default_rng(self.seed)
        slots: list[Selected] = []
        seen = 0
        for cases in stream:
            ordered = sorted(cases, key=lambda c: c.id)
            for i in rng.permutation(len(ordered)):
                case, seen = ordered[i], seen + 1
                if len(slots) < self.capacity:
                    if self._fits(slots, case, None):
                        slots.append(Selected(case, f"reservoir: case {seen} filled slot {len(slots) + 1}"))
                    continue
                slot = int(rng.integers(seen))
                if slot < self.capacity and self._fits(slots, case, slot):
                    slots[slot] = Selected(
                        case, f"reservoir: case {seen} took slot {slot + 1} (seed {self.seed})"
                    )
        return slots

    def _fits(self, slots: list[Selected], case: CaseInfo, replacing: int | None) -> bool:
        """Whether the memory stays within ``byte_budget`` with ``case`` in (replacing slot ``replacing``)."""
        if self.byte_budget is None:
            return True
        freed = slots[replacing].case.nbytes if replacing is not None else 0
        return sum(s.case.nbytes for s in slots) - freed + case.nbytes <= self.byte_budget

    def select(self, candidates: Sequence[CaseInfo]) -> list[Selected]:
        """Choose the cases to keep, per center, in ranking order within each center (centers sorted).

        Raises:
            MemoryBackendError: duplicate case ids.
        """
        duplicates = sorted(i for i, n in Counter(case.id for case in candidates).items() if n > 1)
        if duplicates:
            raise MemoryBackendError(f"replay policy: duplicate case ids {', '.join(duplicates)}")
        chosen: list[Selected] = []
        for center in sorted({case.center for case in candidates}):
            cases = sorted((c for c in candidates if c.center == center), key=lambda c: c.id)
            chosen.extend(self._within_budget(self._rank(cases)))
        return chosen

    def _rank(self, cases: list[CaseInfo]) -> list[Selected]:
        """Up to ``quota`` cases of one center (sorted by id), best first, with their reasons."""
        rng = np.random.default_rng(self.seed)
        if len(cases) <= self.quota:
            order = rng.permutation(len(cases))
            return [Selected(cases[i], f"whole center {k}/{len(cases)}") for k, i in enumerate(order, 1)]
        if self.selection == "random":
            picks = rng.choice(len(cases), size=self.quota, replace=False)
            return [
                Selected(cases[i], f"random {k}/{self.quota} (seed {self.seed})")
                for k, i in enumerate(picks, 1)
            ]
        by_load = sorted(cases, key=lambda c: (c.lesion_voxels, c.id))
        bins = np.array_split(np.arange(len(by_load)), self.quota)
        kept = []
        for k, members in enumerate(bins, 1):
            case = by_load[int(rng.choice(members))]
            low, high = by_load[members[0]].lesion_voxels, by_load[members[-1]].lesion_voxels
            kept.append(
                Selected(case, f"lesion quantile {k}/{self.quota} ({low}-{high} voxels, seed {self.seed})")
            )
        return kept

    def _within_budget(self, ranked: list[Selected]) -> list[Selected]:
        if self.byte_budget is None:
            return ranked
        kept, used = [], 0
        for item in ranked:
            if used + item.case.nbytes <= self.byte_budget:
                kept.append(item)
                used += item.case.nbytes
        return kept


class ReplayMemory:
    """The replay buffer of a continual run: a :class:`ReplayPolicy` filling a :class:`MemoryBackend`.

    Keys are case ids. The memory remembers the candidates of every center added (the stream a reservoir
    draws from); adding a center again replaces its candidates in place, so a resumed stage gives the same
    memory.
    """

    def __init__(self, backend: MemoryBackend, policy: ReplayPolicy) -> None:
        self.backend = backend
        self.policy = policy
        self.stream: dict[str, list[CaseInfo]] = {}

    def add_center(self, center: str, cases: Sequence[CaseInfo], loader: Loader) -> list[SampleMeta]:
        """Select among ``cases`` of ``center``, load the kept ones with ``loader`` and store them.

        Args:
            center: The center just trained on.
            cases: Its candidate (training) cases.
            loader: ``case_id -> (image, label)``, e.g. ``PreparedDataset.load``.

        Returns:
            The stored metadata, in ranking order.

        Raises:
            MemoryBackendError: a case of another center, or a sample the backend refuses.
        """
        strangers = sorted(case.id for case in cases if case.center != center)
        if strangers:
            raise MemoryBackendError(
                f"replay memory: cases {', '.join(strangers)} are not of center {center!r}"
            )
        self.stream[center] = list(cases)
        chosen = self.policy.select_stream(list(self.stream.values()))
        keep = {item.case.id for item in chosen}
        for key in list(self.backend):
            if key not in keep:
                self.backend.remove(key)
        missing = sorted(
            i.case.id for i in chosen if i.case.center != center and i.case.id not in self.backend
        )
        if missing:
            raise MemoryBackendError(f"replay memory: earlier cases {', '.join(missing)} are not stored")
        stored = []
        for item in (i for i in chosen if i.case.center == center):
            image, label = loader(item.case.id)
            meta = SampleMeta(
                center=center,
                subject=item.case.subject,
                contrast=item.case.contrast,
                lesion_voxels=item.case.lesion_voxels,
                reason=item.reason,
            )
            stored.append(self.backend.put(item.case.id, image, label, meta))
        return stored

    def adopt(self, stream: Mapping[str, Sequence[CaseInfo]], logged: Sequence[Mapping[str, Any]]) -> None:
        """Take the store over as a finished study left it, to add centers to it (``mscl extend``).

        Args:
            stream: the candidates of the study's centers, in training order (what :meth:`add_center`
                was given), for the policy to go on from.
            logged: the memory manifest of the study's last stage (:meth:`manifest` rows, as logged).

        Samples of centers outside ``stream`` (left by an interrupted extension, never logged) are removed;
        nothing else is changed.

        Raises:
            MemoryCorrupted: a sample failing its checksums, or the store not holding exactly the logged
                samples (a sample missing, added or replaced).
        """
        bad = self.backend.verify()
        if bad:
            raise MemoryCorrupted(f"replay memory: sample(s) {', '.join(bad)} fail their checksums")
        expected = {row["key"]: (row["image_sha256"], row["label_sha256"]) for row in logged}
        found = {}
        for key in self.backend:
            meta = self.backend.meta(key)
            if meta.center in stream:
                found[key] = (meta.image_sha256, meta.label_sha256)
        differ = sorted(key for key in expected.keys() | found.keys() if expected.get(key) != found.get(key))
        if differ:
            shown = ", ".join(differ[:3]) + (f" (and {len(differ) - 3} more)" if len(differ) > 3 else "")
            raise MemoryCorrupted(
                f"replay memory: the store does not hold the samples its last stage logged: {shown}"
            )
        for key in [k for k in self.backend if k not in found]:
            self.backend.remove(key)
        self.stream = {center: list(cases) for center, cases in stream.items()}

    def clear(self) -> None:
        """Remove every sample (a study rebuilds its memory stage by stage, also when it resumes)."""
        for key in list(self.backend):
            self.backend.remove(key)
        self.stream.clear()

    def centers(self) -> list[str]:
        """Centers present in the memory, sorted."""
        return sorted({self.backend.meta(key).center for key in self.backend})

    def load_all(self) -> list[tuple[np.ndarray, np.ndarray, SampleMeta]]:
        """Every sample, checksums verified, sorted by key: what a stage caches once for training."""
        return [self.backend.get(key) for key in self.backend]

    def manifest(self) -> list[dict[str, Any]]:
        """One row per sample (key, center, subject, contrast, reason, checksums, bytes), e.g. for MLflow."""
        rows = []
        for key in self.backend:
            meta = self.backend.meta(key)
            rows.append(
                {
                    "key": key,
                    "center": meta.center,
                    "subject": meta.subject,
                    "contrast": meta.contrast,
                    "reason": meta.reason,
                    "image_sha256": meta.image_sha256,
                    "label_sha256": meta.label_sha256,
                    "bytes": meta.nbytes,
                    "added": meta.added.isoformat() if meta.added else None,
                }
            )
        return rows
