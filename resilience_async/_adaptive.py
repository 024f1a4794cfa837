"""An in-flight limit that follows measured latency: Netflix's Gradient2, fed by windows.

A fixed limit is a guess per machine: too high and requests queue inside the process (each
waits for the ones before it, the tail grows to seconds), too low and capacity goes unused.
Netflix's concurrency-limits (and Envoy's adaptive concurrency filter after it) measure
instead: while the time requests take stays near its long-term level, the limit grows;
when it rises, requests are queueing inside and the limit shrinks.

`Gradient2` is the algorithm of concurrency-limits' `Gradient2Limit`, given one sample per
window as its `WindowedLimit` does: the average round trip of the window's requests (the
short-term RTT) against an exponential average of those (the long-term RTT):

    gradient  = max(0.5, min(1.0, tolerance * long_rtt / short_rtt))
    new_limit = limit * gradient + queue_size
    limit     = limit * (1 - smoothing) + new_limit * smoothing, within [min, max]

The limit does not move while fewer than half of it are in flight (the load, not latency,
sets the pace then), and the long-term RTT is pulled down faster when it is twice the short
one (latency back to normal after a long overload).

`AdaptiveLimit` admits requests under that limit; one sample costs a clock read and a few
additions, and the limit is recomputed once per window (`min_window`..`max_window` seconds,
at least `window_size` samples), not per request.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Callable, Iterable
from typing import Protocol

from resilience_async._hooks import Hooked
from resilience_async._slots import Slots

Clock = Callable[[], float]
MIN_FRESH = 0.001  # seconds a waiter may be admitted within, however fast requests are


class Gradient2:
    """The limit arithmetic of Netflix's Gradient2 (one update per window of samples).

    Args:
        initial_limit: the limit before any sample.
        min_limit, max_limit: the limit stays within these.
        smoothing: 0..1, how much of each new estimate is taken (1: all of it); it damps
            how fast the limit moves, shrinking above all.
        tolerance: >= 1, how much the short-term RTT may exceed the long-term one before
            the limit shrinks (2.0: twice as slow is still fine).
        queue_size: how much the limit may grow per update while latency is low (also the
            margin it keeps above what latency alone would allow).
        long_window: the long-term RTT's exponential average spans this many updates.
    """

    WARMUP = 10  # updates averaged plainly before the exponential average takes over

    def __init__(self, *, initial_limit: int = 20, min_limit: int = 20, max_limit: int = 200,
                 smoothing: float = 0.2, tolerance: float = 1.5, queue_size: int = 4,
                 long_window: int = 600) -> None:  # fmt: skip
        if not 1 <= min_limit <= max_limit:
            raise ValueError(f"need 1 <= min_limit <= max_limit, got {min_limit}, {max_limit}")
        if not 0.0 < smoothing <= 1.0:
            raise ValueError(f"smoothing must be in (0, 1], got {smoothing}")
        if tolerance < 1.0:
            raise ValueError(f"tolerance must be at least 1.0, got {tolerance}")
        if queue_size < 0 or long_window < 1:
            raise ValueError("queue_size must not be negative, long_window at least 1")
        self.min_limit = min_limit
        self.max_limit = max_limit
        self.smoothing = smoothing
        self.tolerance = tolerance
        self.queue_size = queue_size
        self._factor = 2.0 / (long_window + 1)
        self.estimate = float(min(max(initial_limit, min_limit), max_limit))
        self.short_rtt = 0.0
        self.long_rtt = 0.0
        self._updates = 0

    @property
    def limit(self) -> int:
        return int(self.estimate)

    def update(self, rtt: float, in_flight: int) -> int:
        """Take one window's average RTT (s) and its most requests in flight; the new limit."""
        self.short_rtt = rtt
        long_rtt = self._average(rtt)
        if long_rtt > 2 * rtt:
            self.long_rtt = long_rtt = long_rtt * 0.95  # recover faster after an overload
        estimate = self.estimate
        if in_flight < estimate / 2:
            return int(estimate)  # limited by the load, not by latency: nothing learnt
        gradient = max(0.5, min(1.0, self.tolerance * long_rtt / rtt))
        new = estimate * gradient + self.queue_size
        new = estimate * (1 - self.smoothing) + new * self.smoothing
        self.estimate = max(self.min_limit, min(self.max_limit, new))
        return int(self.estimate)

    def _average(self, rtt: float) -> float:
        self._updates += 1
        if self._updates <= self.WARMUP:
            self.long_rtt += (rtt - self.long_rtt) / self._updates
        else:
            self.long_rtt += (rtt - self.long_rtt) * self._factor
        return self.long_rtt


class AdaptiveLimitHook(Protocol):
    """Told of every caller an adaptive limit refused and of every change of the limit."""

    def record_rejection(self) -> None: ...

    def record_limit(self, limit: int) -> None: ...


class AdaptiveLimit(Hooked[AdaptiveLimitHook]):
    """At most `limit` holders, the limit set by `Gradient2` from the holders' round trips.

    Use as `if limit.try_enter() or await limit.enter(): started = limit.clock()`, then
    `limit.leave(started)`: the round trip counts from admission, not from the wait.

    Args:
        name: for stats and instruments.
        gradient: the algorithm and its parameters.
        max_queue: callers past the limit that may wait for a place.
        queue_timeout: seconds a caller past the limit is held at most before it is refused
            (at least half of it, when it was not admitted).
        lifo: waiters are admitted newest first (see `Slots`): under a sustained overload
            the ones served have barely waited, the oldest are refused.
        fresh_only: a waiter is admitted only within the long-term RTT of its arrival (at
            least `MIN_FRESH`), as CoDel drops what has queued past its target: one admitted
            later would be served as late as the queueing the limit exists to prevent. The
            rest are held until `queue_timeout`, then refused: a client that asks again at
            once after a refusal (a closed loop ignoring Retry-After) cannot spin the
            process on refusals.
        min_window, max_window: seconds a window lasts at least and at most (twice its
            fastest round trip in between), as `WindowedLimit`'s.
        window_size: samples a window needs to update the limit.
        min_rtt: round trips shorter than this (s) are not samples (they measure nothing
            but the bookkeeping).
        clock: seconds, monotonic; a fake one in tests.
    """

    def __init__(self, name: str, *, gradient: Gradient2 | None = None, max_queue: int = 0,
                 queue_timeout: float = 0.0, lifo: bool = True, fresh_only: bool = True,
                 min_window: float = 0.1,
                 max_window: float = 1.0, window_size: int = 10, min_rtt: float = 0.0001,
                 clock: Clock = time.perf_counter,
                 hooks: Iterable[AdaptiveLimitHook] = ()) -> None:  # fmt: skip
        if max_queue < 0 or queue_timeout < 0:
            raise ValueError("max_queue and queue_timeout must not be negative")
        if not 0 < min_window <= max_window or window_size < 1:
            raise ValueError("need 0 < min_window <= max_window and window_size >= 1")
        self.name = name
        self.gradient = gradient or Gradient2()
        self.clock = clock
        self._max_queue = max_queue
        self._queue_timeout = queue_timeout
        self._fresh_only = fresh_only
        self._slots = Slots(self.gradient.limit, lifo=lifo)
        self._min_window = min_window
        self._max_window = max_window
        self._window_size = window_size
        self._min_rtt = min_rtt
        self._hooks = tuple(hooks)
        self._rejected = 0
        self._window_end = clock() + min_window
        # This window's samples: how many, their sum and fastest (s), the most in flight.
        self._count = 0
        self._sum = 0.0
        self._fastest = math.inf
        self._most = 0

    @property
    def limit(self) -> int:
        return self._slots.limit

    @property
    def in_flight(self) -> int:
        return self._slots.taken

    def stats(self) -> dict[str, float]:
        """`limit`, `in_flight`, `waiting`, `rejected` (so far), and the RTTs (s) the
        limit follows: `short_rtt` (last window's average), `long_rtt` (their average)."""
        slots = self._slots
        return {
            "limit": slots.limit,
            "in_flight": slots.taken,
            "waiting": slots.waiting,
            "rejected": self._rejected,
            "short_rtt": self.gradient.short_rtt,
            "long_rtt": self.gradient.long_rtt,
        }

    def try_enter(self) -> bool:
        """Take a free place without waiting or counting anything: pair a True with
        `leave()`; after a False, `enter()` queues (or refuses)."""
        return self._slots.try_take()

    async def enter(self) -> bool:
        """Take a place, queueing if the queue has room: False (counted as a rejection)
        when it has none or the wait ran out. Pair a True with `leave()`."""
        slots = self._slots
        if slots.try_take():
            return True
        wait = self._queue_timeout
        if slots.waiting < self._max_queue and wait > 0:
            fresh = min(wait, max(self.gradient.long_rtt, MIN_FRESH)) if self._fresh_only else wait
            if await slots.take(fresh):
                return True
            if wait > fresh:
                # Held (see `fresh_only`) for a random part of the rest, at least half: the
                # clients of a burst refused together would otherwise come back together.
                await asyncio.sleep((wait - fresh) * random.uniform(0.5, 1.0))  # noqa: S311
        self._rejected += 1
        for hook in self._hooks:
            hook.record_rejection()
        return False

    def leave(self, started: float) -> None:
        """Give the place back; `started`: `clock()` when it was taken (the sample)."""
        now = self.clock()
        rtt = now - started
        in_flight = self._slots.taken
        self._slots.give_back()
        if rtt >= self._min_rtt:
            # Compares, not min()/max(): two calls fewer on every request.
            self._count += 1
            self._sum += rtt
            if rtt < self._fastest:  # noqa: PLR1730
                self._fastest = rtt
            if in_flight > self._most:  # noqa: PLR1730
                self._most = in_flight
        if now > self._window_end:
            self._end_window(now)

    def _end_window(self, now: float) -> None:
        """As `WindowedLimit`: the next window lasts twice this one's fastest round trip,
        within bounds; a window with too few samples is dropped."""
        count, fastest = self._count, self._fastest
        span = 2 * fastest if fastest < math.inf else 0.0
        self._window_end = now + min(max(span, self._min_window), self._max_window)
        if count >= self._window_size:
            self._set_limit(self.gradient.update(self._sum / count, self._most))
        self._reset_window()

    def _reset_window(self) -> None:
        self._count = 0
        self._sum = 0.0
        self._fastest = math.inf
        self._most = 0

    def _set_limit(self, limit: int) -> None:
        if limit == self._slots.limit:
            return
        self._slots.resize(limit)
        for hook in self._hooks:
            hook.record_limit(limit)
