"""The progress display: plain, throttled lines when stderr is not a terminal; bars when it is; quiet."""

from __future__ import annotations

import io
import math

import pytest
import torch
from rich.console import Console

from mscl.progress import HEARTBEAT_S, ProgressDisplay, format_duration
from mscl.protocol.observers import ProgressObserver
from mscl.protocol.results import StageOutcome
from mscl.strategies.base import StagePlan


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def log_console() -> tuple[Console, io.StringIO]:
    """A console writing to a file, as stderr redirected to a log (not interactive)."""
    out = io.StringIO()
    return Console(file=out, force_terminal=False, force_interactive=False, width=200), out


def lines(out: io.StringIO) -> list[str]:
    return out.getvalue().splitlines()


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (44.6, "45s"), (72, "1m12s"), (3599, "59m59s"), (7500, "2h05m"), (-3, "0s")],
)
def test_durations_read_at_a_glance(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_a_log_gets_a_line_per_tenth_with_elapsed_and_eta() -> None:
    console, out = log_console()
    clock = FakeClock()
    with ProgressDisplay(console=console, clock=clock) as display:
        task = display.add_task("prepare data", total=20, unit="case")
        for _ in range(20):
            clock.now += 3.0
            display.advance(task)
    shown = lines(out)
    assert len(shown) == 10  # every second case of 20, the last one included
    assert shown[0] == "prepare data case 2/20 elapsed 6s eta 54s"
    assert shown[-1] == "prepare data case 20/20 elapsed 1m00s"  # complete: no ETA


def test_a_slow_task_writes_a_heartbeat_between_tenths() -> None:
    console, out = log_console()
    clock = FakeClock()
    with ProgressDisplay(console=console, clock=clock) as display:
        task = display.add_task("segmenting", total=1000, unit="scan")
        display.advance(task)
        assert lines(out) == []  # 1/1000: neither a tenth nor a heartbeat yet
        clock.now += HEARTBEAT_S
        display.advance(task)
        assert lines(out) == ["segmenting scan 2/1000 elapsed 1m00s eta 8h19m"]


def test_resumed_items_count_as_done_but_not_in_the_rate() -> None:
    console, out = log_console()
    clock = FakeClock()
    with ProgressDisplay(console=console, clock=clock) as display:
        task = display.add_task("epochs", total=10, unit="epoch")
        clock.now = 10.0
        display.advance(task, "loss 0.500", completed=6)  # epochs 1-5 were done by the interrupted run
    assert lines(out) == ["epochs epoch 6/10 loss 0.500 elapsed 10s eta 40s"]


def test_quiet_shows_nothing_and_a_terminal_gets_bars_not_lines() -> None:
    console, out = log_console()
    with ProgressDisplay(quiet=True, console=console) as display:
        display.advance(display.add_task("x", total=1))
        display.print("a result line")
    assert out.getvalue() == ""
    terminal = Console(file=io.StringIO(), force_terminal=True, force_interactive=True, width=80)
    with ProgressDisplay(console=terminal) as display:
        assert display.bars is not None and not display.lines
        display.advance(display.add_task("x", total=1))


def plan(index: int, center: str, trained: tuple[str, ...]) -> StagePlan:
    return StagePlan(index=index, center=center, train_centers=trained, fresh=False)


def outcome(stage: StagePlan, scores: dict[str, dict[str, float]]) -> StageOutcome:
    return StageOutcome(stage=stage, scores=scores, per_case={}, history=[], seconds=1.0)


def test_a_study_log_names_stage_center_epoch_loss_and_the_stages_test_score() -> None:
    console, out = log_console()
    clock = FakeClock()
    stages = [plan(0, "A", ("A",)), plan(1, "B", ("A", "B"))]
    with ProgressDisplay(console=console, clock=clock) as display:
        observer = ProgressObserver(display, stages, epochs=2, title="replay seed 0", metric="dice")
        for stage in stages:
            observer.stage_started(stage)
            for epoch in range(2):
                clock.now += 5.0
                observer.epoch_finished(stage, epoch, {"loss": 0.25 + epoch})
            scores = {"dice": {"A": 0.5, "B": 0.7, "C": 0.1}}  # C not trained on yet: not in the mean
            observer.stage_finished(outcome(stage, scores), torch.nn.Identity())
    shown = lines(out)
    assert "stage 2/2 B epoch 1/2 loss 0.250 elapsed 5s eta 5s" in shown
    assert shown[-1] == "replay seed 0 stage 2/2 B test dice 0.600 elapsed 20s"


def test_a_stage_with_no_defined_score_shows_nan() -> None:
    console, out = log_console()
    with ProgressDisplay(console=console) as display:
        stage = plan(0, "A", ("A",))
        observer = ProgressObserver(display, [stage], epochs=1, title="t", metric="dice")
        observer.stage_finished(outcome(stage, {"dice": {"A": math.nan}}), torch.nn.Identity())
    assert lines(out)[-1].startswith("t stage 1/1 A test dice nan")
