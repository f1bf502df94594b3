"""Ctrl-C and SIGTERM while a study runs: SIGTERM acts like Ctrl-C, and short critical sections (creating a
run and learning its id) hold both signals until they are done."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM (a preempted job, ``kill``) like Ctrl-C while training, in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def deferred_interrupts() -> Iterator[list[int]]:
    """Hold Ctrl-C and SIGTERM while the block runs; yields the list of signals that arrived meanwhile.

    The block is not interrupted; the caller acts on the list afterwards (typically ``raise
    KeyboardInterrupt`` once what the block created is known, e.g. a run and its id). Outside the main thread
    (where Python delivers no signals) the block simply runs.
    """
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def hold(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    previous = {number: signal.signal(number, hold) for number in HELD_SIGNALS}
    try:
        yield received
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
