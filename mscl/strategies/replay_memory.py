"""The replay policy: which cases of a center enter the memory, and the memory built over any backend.

Selection is deterministic given the seed and independent of input order: candidates are sorted by id
before anything random happens, and every kept case records why in ``SampleMeta.reason``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from mscl.config import MemoryConfig
from mscl.data.manifest import CaseRecord
from mscl.errors import MemoryBackendError
from mscl.memory_backends.base import MemoryBackend, SampleMeta

Selection = Literal["random", "lesion_stratified"]
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
        quota: Cases kept per center (all of a center that has fewer).
        byte_budget: Image + label bytes kept per center at most; ``None`` for no limit.
        selection: ``random`` (seeded) or ``lesion_stratified`` (one case per lesion-load quantile bin).
        seed: Seed of every random choice.
    """

    quota: int = 20
    byte_budget: int | None = None
    selection: Selection = "random"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.quota < 1:
            raise MemoryBackendError(f"replay policy: quota must be >= 1, got {self.quota}")
        if self.byte_budget is not None and self.byte_budget < 1:
            raise MemoryBackendError(f"replay policy: byte_budget must be >= 1, got {self.byte_budget}")
        if self.selection not in ("random", "lesion_stratified"):
            raise MemoryBackendError(f"replay policy: unknown selection {self.selection!r}")

    @classmethod
    def from_config(cls, config: MemoryConfig, seed: int) -> ReplayPolicy:
        """The policy of ``config.memory`` for one experiment seed."""
        return cls(config.per_center_quota, config.byte_budget, config.selection, seed)

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

    Keys are case ids. Adding a center again replaces its samples, so a resumed stage gives the same memory.
    """

    def __init__(self, backend: MemoryBackend, policy: ReplayPolicy) -> None:
        self.backend = backend
        self.policy = policy

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
        chosen = self.policy.select(cases)
        keep = {item.case.id for item in chosen}
        for key in self.backend:
            if self.backend.meta(key).center == center and key not in keep:
                self.backend.remove(key)
        stored = []
        for item in chosen:
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

    def clear(self) -> None:
        """Remove every sample (a study rebuilds its memory stage by stage, also when it resumes)."""
        for key in list(self.backend):
            self.backend.remove(key)

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
