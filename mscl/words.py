"""Counts in words: ``1 seed``, ``3 seeds``, ``1 study``, ``2 studies``."""

from __future__ import annotations


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``n`` and ``noun``, in the plural (``plural``, by default ``noun + "s"``) unless ``n`` is 1."""
    return f"{n} {noun}" if n == 1 else f"{n} {plural or noun + 's'}"
