"""Hedged calls: a second attempt once the first is slower than usual; the first answer wins.

A dependency's latency has a tail (a GC pause, one slow connection, a sick host): most calls
answer in a few milliseconds and a few take far longer. Waiting for each slow answer puts
that tail into the caller's own latency. A hedge ("The Tail at Scale", Dean and Barroso)
starts a second attempt of an idempotent call once the first has taken longer than a recent
percentile of the call's latency, and takes whichever answers first: the rare slow attempt
is overtaken by a fresh one, at the cost of a few extra calls.

Those extra calls draw on a budget (a `RetryBudget`, as retries do): hedges stay within a
fraction of recent calls, so a dependency that turns slow as a whole never sees its load
doubled; past the budget each call waits for its one attempt, as it would without hedging.

The attempt that loses is cancelled at once and finished off the caller's path: the winner's
answer is not held up by the loser's clean-up, a loser still running `grace` seconds later is
cancelled again, and `aclose()` waits for every loser, so none is leaked. Or, with
`finish_losers`, a loser is left to end on its own (still off the caller's path, still
awaited by `aclose()`): right for a database read, whose cancellation costs more than its
query (psycopg opens a connection to the server to cancel it, and holds the pooled one until
the server answers), and whose own query timeout bounds it.

    hedge = Hedge("replica reads")
    rows = await hedge.run(lambda: read_on(replica_1), lambda: read_on(primary))
"""

from __future__ import annotations

import asyncio
import bisect
import functools
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Generic, Protocol, TypeVar

from resilience_async._hooks import Hooked
from resilience_async._retry import RetryBudget

T = TypeVar("T")
Attempt = Callable[[], Awaitable[T]]


class HedgeHook(Protocol):
    """Told of every hedge: whether it was sent (False: the budget refused it) and, once the
    call ends, which attempt answered ("first" or "hedge")."""

    def record_hedge(self, sent: bool, /) -> None: ...

    def record_winner(self, winner: str, /) -> None: ...


class LatencyWindow:
    """The latencies of the last `size` attempts, and a percentile of them.

    The percentile is recomputed every `size // 8` samples, not per call: a hedge's delay
    follows the latency of the last few seconds, and sorting a few hundred floats on every
    call would cost more than the call's own bookkeeping.
    """

    def __init__(self, size: int = 256, percentile: float = 0.95) -> None:
        if size < 8 or not 0 < percentile < 1:
            raise ValueError(f"need size >= 8 and 0 < percentile < 1, got {size}, {percentile}")
        self.size = size
        self.percentile = percentile
        self._samples: list[float] = []
        self._next = 0
        self._since = 0
        self._every = size // 8
        self.value: float | None = None  # None until `size // 8` samples have been seen

    def add(self, seconds: float) -> None:
        if len(self._samples) < self.size:
            self._samples.append(seconds)
        else:
            self._samples[self._next] = seconds
            self._next = (self._next + 1) % self.size
        self._since += 1
        if self._since >= self._every:
            self._since = 0
            ordered = sorted(self._samples)
            self.value = ordered[min(len(ordered) - 1, int(self.percentile * len(ordered)))]

    def rank(self, seconds: float) -> float:
        """The fraction of kept samples at or below `seconds` (for tests and stats)."""
        ordered = sorted(self._samples)
        return bisect.bisect_right(ordered, seconds) / len(ordered) if ordered else 0.0


class Hedge(Hooked[HedgeHook], Generic[T]):
    """Hedged calls to one dependency: its latency window, its budget and its losers.

    Args:
        name: the dependency's name in stats, metrics and logs.
        percentile: the hedge's delay is this percentile of recent attempts' latency.
        min_delay: seconds a hedge waits at least (a fast dependency's jitter is not a tail).
        max_delay: seconds after which a hedge is sent whatever the percentile says; also
            the delay until the window has samples enough.
        budget: hedges allowed as a fraction of recent calls (default: 10 %, plus one a
            second so that a quiet service can still hedge).
        window: how many recent attempts the percentile is taken over.
        grace: seconds a cancelled loser may take to finish before it is cancelled again.
        finish_losers: leave the attempt that lost to finish instead of cancelling it (an
            attempt of a call cancelled by its caller is cancelled all the same).
        hooks: told of every hedge sent or refused, and of every winner (`HedgeHook`).
    """

    def __init__(
        self,
        name: str,
        *,
        percentile: float = 0.95,
        min_delay: float = 0.005,
        max_delay: float = 0.5,
        budget: RetryBudget | None = None,
        window: int = 256,
        grace: float = 0.5,
        finish_losers: bool = False,
        hooks: Iterable[HedgeHook] = (),
    ) -> None:
        if not 0 <= min_delay <= max_delay:
            raise ValueError(f"need 0 <= min_delay <= max_delay, got {min_delay}, {max_delay}")
        self.name = name
        self.min_delay = min_delay
        self.max_delay = max_delay
        self.latency = LatencyWindow(window, percentile)
        self._budget = budget or RetryBudget(ratio=0.1, min_per_second=1.0)
        self._grace = grace
        self._finish_losers = finish_losers
        self._losers: set[asyncio.Task[Any]] = set()
        self._counts = {"calls": 0, "hedged": 0, "refused": 0, "declined": 0, "won": 0}
        self._hooks = tuple(hooks)

    @property
    def delay(self) -> float:
        """Seconds the next call waits before it hedges."""
        recent = self.latency.value
        if recent is None:
            return self.max_delay
        return min(max(recent, self.min_delay), self.max_delay)

    def stats(self) -> dict[str, Any]:
        """`calls`, `hedged` (hedges sent), `refused` (by the budget), `declined` (by the
        caller's `worth_it`), `won` (calls the hedge answered), `delay` (seconds, now) and
        `cleaning` (losers still finishing)."""
        return {**self._counts, "delay": self.delay, "cleaning": len(self._losers)}

    async def run(self, first: Attempt[T], second: Attempt[T] | None = None, *,
                  worth_it: Callable[[], bool] | None = None) -> T:  # fmt: skip
        """The first answer of `first()` and, once it is late, `second()` (if given, if
        `worth_it()` says so when asked then, and if the budget allows). A failed attempt
        does not win while the other may still answer; when both fail, the first attempt's
        error is raised.

        `worth_it` lets the caller decline a hedge it knows cannot help (a read still
        queued for one of the caller's own connections is late because the caller is busy:
        another attempt adds work where the time goes); a declined hedge spends no budget."""
        self._counts["calls"] += 1
        self._budget.record_request()
        if second is None:
            value, took = await _timed(first)
            self.latency.add(took)
            return value
        loop = asyncio.get_running_loop()
        started = loop.time()
        leading = loop.create_task(_timed(first))
        hedging: asyncio.Task[tuple[T, float]] | None = None
        answered = False
        try:
            declined = False
            while not await _within(leading, self.delay, loop):
                if worth_it is not None and not worth_it():
                    # Asked again a delay later: once the attempt is on its way, its
                    # lateness may be the dependency's.
                    if not declined:
                        declined = True
                        self._counts["declined"] += 1
                    continue
                if self._budget.try_spend():
                    self._note(sent=True)
                    hedging = loop.create_task(_timed(second))
                    value = await self._race(leading, hedging)
                    answered = True
                    return value
                self._note(sent=False)
                await asyncio.wait((leading,))  # cancelled here, the attempt is abandoned
                break
            return self._settle(leading)
        finally:
            cancel = not (answered and self._finish_losers)
            if not leading.done():
                self.latency.add(loop.time() - started)  # a lower bound, kept as one
                self._abandon(leading, cancel=cancel)
            if hedging is not None and not hedging.done():
                self._abandon(hedging, cancel=cancel)

    def _settle(self, task: asyncio.Task[tuple[T, float]]) -> T:
        value, took = task.result()
        self.latency.add(took)
        return value

    async def _race(self, leading: asyncio.Task[tuple[T, float]],
                    hedging: asyncio.Task[tuple[T, float]]) -> T:  # fmt: skip
        pending = {leading, hedging}
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in (leading, hedging):  # the first attempt wins a tie
                if task in done and task.exception() is None:
                    winner = "first" if task is leading else "hedge"
                    if winner == "hedge":
                        self._counts["won"] += 1
                    for hook in self._hooks:
                        hook.record_winner(winner)
                    return self._settle(task)
        error = leading.exception()
        assert error is not None
        raise error

    def _note(self, *, sent: bool) -> None:
        self._counts["hedged" if sent else "refused"] += 1
        for hook in self._hooks:
            hook.record_hedge(sent)

    def _abandon(self, task: asyncio.Task[Any], *, cancel: bool) -> None:
        """Leave a loser to finish in the background: cancelled (again after `grace`), or
        left to end on its own."""
        self._losers.add(task)
        force = None
        if cancel:
            task.cancel()
            force = asyncio.get_running_loop().call_later(self._grace, task.cancel)
        task.add_done_callback(lambda done: self._buried(done, force))

    def _buried(self, task: asyncio.Task[Any], force: asyncio.TimerHandle | None) -> None:
        if force is not None:
            force.cancel()
        self._losers.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a loser's failure is no one's error

    async def aclose(self) -> None:
        """Wait for every loser to finish (its clean-up, or its attempt)."""
        while self._losers:
            await asyncio.gather(*self._losers, return_exceptions=True)


async def _within(task: asyncio.Task[Any], delay: float, loop: asyncio.AbstractEventLoop) -> bool:
    """Whether `task` is done within `delay` seconds (it is left running either way).

    asyncio.wait(timeout=) costs twice this: a future woken by the task or a timer,
    whichever comes first, is the whole hedge's cost on a call answered in time."""
    waiter = loop.create_future()
    wake = functools.partial(_wake, waiter)
    task.add_done_callback(wake)
    timer = loop.call_later(delay, wake, None)
    try:
        await waiter
    finally:
        timer.cancel()
        task.remove_done_callback(wake)
    return task.done()


def _wake(waiter: asyncio.Future[None], _: object) -> None:
    if not waiter.done():
        waiter.set_result(None)


async def _timed(attempt: Attempt[T]) -> tuple[T, float]:
    started = time.perf_counter()
    value = await attempt()
    return value, time.perf_counter() - started
