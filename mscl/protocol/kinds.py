"""What the rows of an R matrix mean: the kinds of study a strategy runs."""

from __future__ import annotations

from typing import Literal

RMatrixKind = Literal["continual", "single", "joint", "cumulative"]
"""``continual`` and ``cumulative``: row i = after stage i; ``single``: row i = a model of center i alone;
``joint``: one row, all centers pooled (see :mod:`mscl.tracking.rmatrix`)."""
SEQUENTIAL_KINDS: tuple[RMatrixKind, ...] = ("continual", "cumulative")
"""Kinds whose rows are a stage sequence over the centers: BWT, FWT and forgetting apply."""
