"""Fault injection for tests: ``MSCL_FAULT=<point>:<n>`` kills this process (SIGKILL) at the n-th hit of a
named point, the way a power cut or the out-of-memory killer would, with no chance to clean up.

The points, in the order a stage meets them:

========================  ===========================================================================
``step``                  after an optimizer step (:func:`mscl.engine.trainer._run_epoch`)
``evaluate``              when the model is about to be scored (the untrained baseline is hit 1)
``memory_commit``         a replay memory about to commit its index (arrays written, not yet visible)
``upload``                a hashed artifact about to be uploaded (:func:`mscl.tracking.artifacts.log_file`)
``uploaded``              a hashed artifact uploaded, its sha256 tag not yet set
``stage_end``             a stage run ended in MLflow, its local resume point not yet removed
========================  ===========================================================================

With ``MSCL_FAULT_ONCE=<path>`` also set, the fault fires only in a process that finds no file at
``path``, which it creates just before dying: the process that a scheduler starts again in its place
(a retried Ray task) runs on.

The variables are read once, at import; with ``MSCL_FAULT`` unset :func:`hit` returns at once. Only tests
set them (``tests/test_faults.py``, ``tests/study``).
"""

from __future__ import annotations

import os
import signal

ENV = "MSCL_FAULT"
ONCE_ENV = "MSCL_FAULT_ONCE"
POINTS: tuple[str, ...] = ("step", "evaluate", "memory_commit", "upload", "uploaded", "stage_end")


def _parse(spec: str | None) -> tuple[str, int] | None:
    if not spec:
        return None
    point, _, count = spec.partition(":")
    if point not in POINTS or not count.isdigit() or int(count) < 1:
        raise ValueError(f"{ENV}={spec!r}: expected <point>:<n> with a point of {', '.join(POINTS)}, n >= 1")
    return point, int(count)


_TARGET = _parse(os.environ.get(ENV))
_ONCE = os.environ.get(ONCE_ENV)
_hits = 0


def hit(point: str) -> None:
    """Count a hit of ``point``; at the n-th hit of the point named by ``MSCL_FAULT`` die with SIGKILL."""
    global _hits
    if _TARGET is None or point != _TARGET[0]:
        return
    _hits += 1
    if _hits != _TARGET[1]:
        return
    if _ONCE is not None:
        try:
            with open(_ONCE, "x"):
                pass
        except FileExistsError:  # the fault has fired once already
            return
    os.kill(os.getpid(), signal.SIGKILL)
