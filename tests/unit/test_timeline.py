"""The fault timeline: faults applied and undone on the load's clock, windows recorded,
and every undo run once, also after failures (what the runner relies on at Ctrl-C)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import SimpleNamespace

import pytest

from loadtests.scenario.timeline import TimedFault, Timeline


def fault(name: str, start: float = 0.0, duration: float | None = None) -> TimedFault:
    return SimpleNamespace(  # type: ignore[return-value]
        name=name, kind="test", target="x", start=start, duration=duration, params={}
    )


class Journal:
    """Applies test faults, logging "+name" and "-name"; a name in `failing` fails."""

    def __init__(self, *, failing_apply: str = "", failing_undo: str = "") -> None:
        self.log: list[str] = []
        self.failing_apply, self.failing_undo = failing_apply, failing_undo

    def apply(self, f: TimedFault) -> Callable[[], None]:
        if f.name == self.failing_apply:
            raise RuntimeError(f"cannot apply {f.name}")
        self.log.append(f"+{f.name}")

        def undo() -> None:
            if f.name == self.failing_undo:
                raise RuntimeError(f"cannot undo {f.name}")
            self.log.append(f"-{f.name}")

        return undo


def run(faults: list[TimedFault], journal: Journal) -> Timeline:
    # t0 in the past: every event is due at once, in schedule order.
    timeline = Timeline(faults, journal.apply, t0=time.time() - 1000, run_end=2000)
    timeline.run(threading.Event())
    return timeline


def test_faults_are_applied_and_undone_in_schedule_order() -> None:
    journal = Journal()
    run([fault("b", start=5, duration=10), fault("a", start=1, duration=2)], journal)
    assert journal.log == ["+a", "-a", "+b", "-b"]


def test_at_one_instant_the_ending_fault_is_undone_before_the_next_starts() -> None:
    journal = Journal()
    run([fault("second", start=5, duration=1), fault("first", start=2, duration=3)], journal)
    assert journal.log == ["+first", "-first", "+second", "-second"]


def test_a_fault_without_duration_lasts_until_undo_all_newest_first() -> None:
    journal = Journal()
    timeline = run([fault("a", start=1), fault("b", start=2), fault("c", 3, 1)], journal)
    assert journal.log == ["+a", "+b", "+c", "-c"]
    assert timeline.active() == ["a", "b"]
    assert timeline.undo_all() == []
    assert journal.log[-2:] == ["-b", "-a"]
    assert timeline.active() == []
    assert all(w.end is not None for w in timeline.windows)


def test_undo_all_goes_on_past_a_failing_undo_and_runs_each_undo_once() -> None:
    journal = Journal(failing_undo="b")
    timeline = run([fault("a", 1), fault("b", 2), fault("c", 3)], journal)
    assert timeline.undo_all() == ["undo failed: cannot undo b"]
    assert journal.log == ["+a", "+b", "+c", "-c", "-a"]
    assert timeline.undo_all() == []
    assert journal.log == ["+a", "+b", "+c", "-c", "-a"]


def test_a_fault_that_cannot_be_applied_is_a_window_with_its_error() -> None:
    journal = Journal(failing_apply="a")
    timeline = run([fault("a", 1, 5), fault("b", 2, 1)], journal)
    assert journal.log == ["+b", "-b"]
    window = timeline.windows[0]
    assert (window.name, window.error) == ("a", "cannot apply a")
    assert window.end is not None


def test_stop_ends_the_schedule_before_faults_still_to_come() -> None:
    journal = Journal()
    timeline = Timeline([fault("later", start=3600)], journal.apply, t0=time.time(), run_end=7200)
    stop = threading.Event()
    stop.set()
    timeline.run(stop)
    assert journal.log == []
    assert timeline.windows == []


@pytest.mark.parametrize("elapsed", [0.0, 10.0])
def test_windows_are_on_the_loads_clock(elapsed: float) -> None:
    journal = Journal()
    timeline = Timeline([fault("a", start=0, duration=0)], journal.apply,
                        t0=time.time() - elapsed, run_end=100)  # fmt: skip
    timeline.run(threading.Event())
    window = timeline.windows[0]
    assert window.start >= elapsed
    assert window.end is not None
    assert window.end >= window.start
