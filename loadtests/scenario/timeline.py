"""The fault timeline: each fault applied at its start and undone at its end, on the load's
clock, with the real times recorded as the windows the report shades.

Every applied fault's undo is kept until it has run, so `undo_all()` (the runner calls it
at the end, on Ctrl-C and on any error) leaves no fault behind.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

logger = logging.getLogger(__name__)


class TimedFault(Protocol):
    name: str
    kind: str
    target: str
    start: float
    duration: float | None
    params: dict[str, Any]


@dataclass
class Window:
    """When a fault was really in force, in seconds from the load's start."""

    name: str
    kind: str
    target: str
    start: float
    end: float | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "target": self.target,
                "start": self.start, "end": self.end, "error": self.error}  # fmt: skip


class Timeline:
    """Runs the faults of one scenario against `apply` (which returns each fault's undo).

    Args:
        faults: the scenario's faults; a fault without a duration lasts until the run ends.
        apply: applies a fault, returns its undo; raising marks the fault as failed.
        t0: the load's start (unix seconds): fault times count from it.
        run_end: seconds from t0 when the load ends and open faults are undone.
    """

    def __init__(
        self,
        faults: list[TimedFault],
        apply: Callable[[TimedFault], Callable[[], None]],
        *,
        t0: float,
        run_end: float,
    ) -> None:
        self._apply = apply
        self.t0 = t0
        self.run_end = run_end
        self.windows: list[Window] = []
        self._open: dict[int, tuple[Window, Callable[[], None]]] = {}
        self._lock = threading.Lock()
        # (when, order at that instant, index, is_start, fault): at one instant, ends come
        # before starts (back-to-back faults do not overlap), but a fault of no duration
        # ends after it started.
        events = []
        for index, fault in enumerate(faults):
            events.append((fault.start, 1, index, True, fault))
            if fault.duration is not None:
                order = 0 if fault.duration > 0 else 2
                events.append((fault.start + fault.duration, order, index, False, fault))
        self._events = sorted(events, key=lambda e: (e[0], e[1], e[2]))

    def now(self) -> float:
        return time.time() - self.t0

    def active(self) -> list[str]:
        """Names of the faults in force now (for the progress line)."""
        with self._lock:
            return [w.name for w in self.windows if w.end is None and w.error is None]

    def run(self, stop: threading.Event) -> None:
        """Apply and undo on schedule until every event ran or `stop` is set."""
        for at, _, index, is_start, fault in self._events:
            if stop.wait(max(0.0, at - self.now())):
                return
            if is_start:
                self._start(index, fault)
            else:
                self._end(index)

    def _start(self, index: int, fault: TimedFault) -> None:
        window = Window(fault.name, fault.kind, fault.target, start=self.now())
        with self._lock:
            self.windows.append(window)
        try:
            undo = self._apply(fault)
        except Exception as exc:
            logger.exception("fault %s could not be applied", fault.name)
            window.error, window.end = str(exc), self.now()
            return
        with self._lock:
            self._open[index] = (window, undo)

    def _end(self, index: int) -> str | None:
        """Undo one open fault; the error text when its undo failed."""
        with self._lock:
            entry = self._open.pop(index, None)
        if entry is None:
            return None
        window, undo = entry
        error = None
        try:
            undo()
        except Exception as exc:
            logger.exception("fault %s could not be undone", window.name)
            error = window.error = f"undo failed: {exc}"
        window.end = min(self.now(), self.run_end)
        return error

    def undo_all(self) -> list[str]:
        """Undo every fault still in force, latest first; the errors of undos that failed."""
        with self._lock:
            pending = sorted(self._open, reverse=True)
        return [error for index in pending if (error := self._end(index))]
