"""Counters and switches shared by every connection of one run.

Everything runs on one event loop, so plain attributes need no locks; the
measured window is two `perf_counter` instants compared on each completion.
"""

from __future__ import annotations

import asyncio
from array import array
from time import perf_counter
from typing import TYPE_CHECKING, Protocol

from loadtests.bench.generator.result import ERROR_KINDS, LoadResult, summarize

if TYPE_CHECKING:
    from loadtests.bench.generator.request import Target


class Socket(Protocol):
    """What the run needs of one of its connections: stop it, or time its request out."""

    def abort(self) -> None: ...

    def expire(self, deadline: float) -> None: ...


class RunState:
    """What one run has measured so far, and whether it may send more."""

    def __init__(
        self,
        target: Target,
        *,
        warmup: float,
        duration: float,
        timeout: float,
        max_requests: int | None,
    ) -> None:
        self.target = target
        self.request = target.request
        self.timeout = timeout
        self.max_requests = max_requests
        started = perf_counter()
        self.window_start = started + warmup
        self.window_end = self.window_start + duration
        self.stopped = False
        self.counted = 0
        self.in_flight = 0
        # Seconds, 8 bytes each so long runs stay small: 2xx answers, and the others apart
        # (is a refusal faster than an answer?).
        self.latencies = array("d")
        self.failed_latencies = array("d")
        self.statuses: dict[int, int] = {}
        self.errors = dict.fromkeys(ERROR_KINDS, 0)
        self.conns: set[Socket] = set()
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._drained: asyncio.Future[None] | None = None

    def may_send(self) -> bool:
        """False once stopped, or when in-flight requests could already reach max_requests."""
        if self.stopped:
            return False
        cap = self.max_requests
        return cap is None or self.counted + self.in_flight < cap

    def record_response(self, status: int, latency: float, now: float) -> None:
        """Count a complete response if it finished inside the measured window."""
        if self.stopped or not self.window_start <= now < self.window_end:
            return
        self.counted += 1
        if 200 <= status < 300:
            self.latencies.append(latency)
        else:
            self.failed_latencies.append(latency)
        statuses = self.statuses
        statuses[status] = statuses.get(status, 0) + 1
        if self.counted == self.max_requests:
            self.finish(now)

    def record_error(self, kind: str, now: float) -> None:
        """Count a failure without a response if it happened inside the measured window."""
        if not self.stopped and self.window_start <= now < self.window_end:
            self.errors[kind] += 1

    def finish(self, at: float) -> None:
        """Close the window at `at` (the deadline, or when max_requests was reached)."""
        if self.stopped:
            return
        self.stopped = True
        self.window_end = min(self.window_end, max(at, self.window_start))
        if not self.finished.done():
            self.finished.set_result(None)

    def finish_on_schedule(self) -> None:
        """Timer callback: the window ends exactly at its planned end, however late we run."""
        self.finish(self.window_end)

    def forget(self, conn: Socket) -> None:
        """A socket is gone; wake the shutdown once the last one is."""
        self.conns.discard(conn)
        if not self.conns and self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    async def drained(self) -> None:
        """Wait until every socket has reported connection_lost (so none is left unclosed)."""
        if not self.conns:
            return
        self._drained = asyncio.get_running_loop().create_future()
        await self._drained

    def result(self) -> LoadResult:
        apart = bool(self.failed_latencies)  # else every answer was 2xx: one summary is all
        return LoadResult(
            requests=self.counted,
            duration=max(0.0, self.window_end - self.window_start),
            statuses=dict(sorted(self.statuses.items())),
            errors=dict(self.errors),
            latencies_ms=summarize(self.latencies + self.failed_latencies),
            ok_latencies_ms=summarize(self.latencies) if apart else None,
            non_2xx_latencies_ms=summarize(self.failed_latencies) if apart else None,
        )
