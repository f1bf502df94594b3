"""Domain orders: the sequence in which hospitals arrive.

- ``descending``: centers by number of subjects, largest first; ties broken by name. (The paper lists
  BWH, Karo, Milan, Rennes, ... although Rennes has 51 subjects and Milan 47; pass that list explicitly to
  reproduce it verbatim.)
- ``random``: a permutation drawn from ``numpy.random.default_rng(order_seed)``.
- ``A,B,C``: an explicit comma-separated list; every name must be a center of the dataset.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from mscl.errors import ConfigError

ORDER_KINDS = ("descending", "random")


def order_kind(spec: str) -> str:
    """``descending``, ``random`` or ``custom`` for an order specification."""
    return spec if spec in ORDER_KINDS else "custom"


def resolve_order(spec: str, subjects: Mapping[str, int], order_seed: int) -> list[str]:
    """Turn an order specification into the list of centers in training order.

    Args:
        spec: ``descending``, ``random`` or a comma-separated list of center names.
        subjects: number of subjects per center (the centers taking part).
        order_seed: seed of the random permutation.

    Raises:
        ConfigError: when an explicit list names an unknown center or repeats one.
    """
    centers = sorted(subjects)
    if spec == "descending":
        return sorted(centers, key=lambda c: (-subjects[c], c))
    if spec == "random":
        return [centers[i] for i in np.random.default_rng(order_seed).permutation(len(centers))]
    names = [name.strip() for name in spec.split(",") if name.strip()]
    unknown = [name for name in names if name not in subjects]
    if unknown:
        raise ConfigError(
            f"protocol.order names unknown center(s) {', '.join(unknown)}; known: {', '.join(centers)}"
        )
    if len(set(names)) != len(names):
        raise ConfigError(f"protocol.order repeats a center: {spec}")
    return names


def select_centers(available: Sequence[str], wanted: Sequence[str] | None) -> list[str]:
    """The centers taking part: ``wanted`` (validated) or all ``available``."""
    if wanted is None:
        return list(available)
    unknown = [c for c in wanted if c not in available]
    if unknown:
        raise ConfigError(
            f"protocol.centers names unknown center(s) {', '.join(unknown)}; known: {', '.join(available)}"
        )
    return list(wanted)
