"""Counted slots with a FIFO queue: the core of bulkheads and connection limits.

`asyncio.Semaphore.locked()` scans its waiters on every call; on a path taken thousands of
times per second a counter and a deque of futures cost a fraction of it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Callable


class Slots:
    """At most `limit` holders; others may queue for a bounded time.

    Args:
        lifo: a freed slot goes to the newest waiter, not the oldest. Under sustained
            overload a FIFO queue serves only callers that have waited longest; LIFO serves
            fresh ones at once and leaves the oldest to time out (Facebook's adaptive LIFO).
    """

    def __init__(self, limit: int, *, lifo: bool = False) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        self.limit = limit
        self.taken = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._next = self._waiters.pop if lifo else self._waiters.popleft

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def try_take(self) -> bool:
        """Take a free slot without waiting; False when none is free."""
        if self.taken < self.limit and not self._waiters:
            self.taken += 1
            return True
        return False

    async def take(self, wait: float | None) -> bool:
        """Take a slot, queueing at most `wait` seconds (None: no limit); False on timeout."""
        if self.try_take():
            return True
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(wait):
                await waiter
        except TimeoutError:
            return self._settle(waiter)
        except asyncio.CancelledError:
            if self._settle(waiter):
                self.give_back()
            raise
        return True

    def _settle(self, waiter: asyncio.Future[None]) -> bool:
        """After giving up: whether a slot was handed over anyway (then it is ours)."""
        if waiter.done() and not waiter.cancelled():
            return True
        with contextlib.suppress(ValueError):
            self._waiters.remove(waiter)
        return False

    def fail_waiters(self, error: Callable[[], BaseException]) -> None:
        """Wake every queued caller with a new `error()` (raised by its `take`): what they
        wait for will not come, say its server died. Holders keep their slots."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(error())

    def give_back(self) -> None:
        """Release a slot: straight to the next waiter if any (the longest one, or the
        newest when LIFO), else to the pool; kept back while over a lowered limit."""
        if self.taken <= self.limit and self._hand_over():
            return  # the slot changes hands: `taken` is unchanged
        self.taken -= 1

    def resize(self, limit: int) -> None:
        """Change the limit: a raised one hands its new slots to waiters at once; past a
        lowered one, holders keep theirs and slots given back are not handed on."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        self.limit = limit
        while self.taken < limit and self._hand_over():
            self.taken += 1

    def _hand_over(self) -> bool:
        while self._waiters:
            waiter = self._next()
            if not waiter.done():
                waiter.set_result(None)
                return True
        return False
