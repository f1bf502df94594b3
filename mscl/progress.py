"""The progress display shared by every long command: rich bars on a terminal, plain lines in a log.

rich decides what a terminal is (``Console.is_interactive`` of stderr, which honours ``TTY_INTERACTIVE``,
``TTY_COMPATIBLE``, ``FORCE_COLOR`` and ``TERM=dumb``). Elsewhere (a redirect, ``nohup``, CI, a cluster job)
every task writes a plain line to stderr at each tenth of its total, after :data:`HEARTBEAT_S` without one,
and when it completes, e.g. ``stage 3/8 BWH epoch 20/40 loss 0.412 elapsed 1m12s eta 2m30s``. ``quiet``
silences both.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

LINES_PER_TASK = 10
"""Plain lines: one each time a task passes another ``1 / LINES_PER_TASK`` of its total."""
HEARTBEAT_S = 60.0
"""Plain lines: a task that advances this long after its last line writes one anyway."""

Clock = Callable[[], float]


def format_duration(seconds: float) -> str:
    """``45s``, ``1m12s`` or ``2h05m``, to the whole second."""
    whole = max(round(seconds), 0)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


@dataclass
class _Task:
    """One task's counts and timing; ``ran`` counts the items finished under this display (its ETA's rate)."""

    description: str
    total: int
    unit: str
    began: float
    bar: TaskID | None = None
    completed: int = 0
    ran: int = 0
    note: str = ""
    shown: int = 0
    shown_at: float = 0.0

    def __post_init__(self) -> None:
        self.shown_at = self.began

    @property
    def label(self) -> str:
        """The description with the latest note."""
        return f"{self.description} {self.note}" if self.note else self.description

    def eta(self, now: float) -> float | None:
        """Seconds left at the rate so far; None before the first item and once complete."""
        if self.ran == 0 or self.completed >= self.total:
            return None
        return (self.total - self.completed) * (now - self.began) / self.ran

    def due(self, now: float) -> bool:
        """Whether a plain line is due: complete, another tenth passed, or silent for a heartbeat."""
        if self.completed >= self.total:
            return True
        total = max(self.total, 1)
        tenth = self.completed * LINES_PER_TASK // total > self.shown * LINES_PER_TASK // total
        return tenth or now - self.shown_at >= HEARTBEAT_S

    def line(self, now: float) -> str:
        """``<description> [<unit>] <done>/<total> [<note>] elapsed <t> [eta <t>]``."""
        parts = [self.description, self.unit, f"{self.completed}/{self.total}", self.note]
        parts.append(f"elapsed {format_duration(now - self.began)}")
        eta = self.eta(now)
        if eta is not None:
            parts.append(f"eta {format_duration(eta)}")
        return " ".join(part for part in parts if part)


class ProgressDisplay:
    """Tasks with a total, shown as rich bars on an interactive stderr and as throttled plain lines elsewhere.

    Args:
        quiet: show nothing (``--quiet``).
        transient: bars vanish once done (plain lines stay).
        console: where to show it (default: stderr).
        clock: seconds, for elapsed and ETA (tests pass a fake one).
    """

    def __init__(
        self,
        quiet: bool = False,
        transient: bool = False,
        *,
        console: Console | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.console = console or Console(stderr=True)
        self.quiet, self.clock = quiet, clock
        terminal = self.console.is_interactive or self.console.is_jupyter
        self.bars = _bars(self.console, transient) if terminal and not quiet else None
        self.lines = not terminal and not quiet
        self.tasks: list[_Task] = []

    def __enter__(self) -> ProgressDisplay:
        if self.bars is not None:
            self.bars.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self.bars is not None:
            self.bars.stop()

    def add_task(self, description: str, total: int, unit: str = "") -> int:
        """A new task of ``total`` items (``unit`` names them in plain lines); returns its id."""
        task = _Task(description, total, unit, began=self.clock())
        if self.bars is not None:
            task.bar = self.bars.add_task(description, total=total)
        self.tasks.append(task)
        return len(self.tasks) - 1

    def reset(self, task_id: int, description: str, total: int) -> None:
        """Start task ``task_id`` over (the next stage's epochs): counts, note and clock."""
        old = self.tasks[task_id]
        task = _Task(description, total, old.unit, began=self.clock(), bar=old.bar)
        self.tasks[task_id] = task
        if self.bars is not None and task.bar is not None:
            self.bars.reset(task.bar, total=total, description=description)

    def advance(self, task_id: int, note: str | None = None, completed: int | None = None) -> None:
        """One item of task ``task_id`` finished; ``note`` replaces the task's note (``loss 0.412``).

        ``completed`` is the count after this item when it is not one more than before: items skipped
        (done by an earlier, resumed run) count as done but not in the ETA's rate.
        """
        task = self.tasks[task_id]
        task.completed = task.completed + 1 if completed is None else completed
        task.ran += 1
        if note is not None:
            task.note = note
        if self.bars is not None and task.bar is not None:
            self.bars.update(task.bar, completed=task.completed, description=task.label)
        now = self.clock()
        if self.lines and task.due(now):
            self.print(task.line(now))
            task.shown, task.shown_at = task.completed, now

    def print(self, line: str) -> None:
        """A line above the bars, or in the log (never wrapped, no markup); nothing when quiet."""
        if not self.quiet:
            self.console.print(line, markup=False, highlight=False, soft_wrap=True)


def _bars(console: Console, transient: bool) -> Progress:
    """The bar layout: description, bar, done/total, elapsed time."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=transient,
    )
