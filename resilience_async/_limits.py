"""Bulkheads: bounded concurrency per dependency, then fail fast (or after a short queue).

When a dependency slows down, callers pile up on it; past a limit, waiting only converts a
slow dependency into a dead service. A bulkhead caps the calls in flight and answers the
rest at once with `BulkheadFullError` (a `SaturatedError`: our limit, not the dependency's
fault, so no breaker counts it).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from resilience_async._errors import BulkheadFullError
from resilience_async._hooks import Hooked
from resilience_async._slots import Slots


class BulkheadHook(Protocol):
    """Told of every call a bulkhead refused."""

    def record_rejection(self) -> None: ...


class Bulkhead(Hooked[BulkheadHook]):
    """At most `max_concurrent` holders; up to `max_queue` more may wait `queue_timeout` s.

    Use as `async with bulkhead: ...`. With the defaults (no queue) a full bulkhead
    rejects at once, without suspending the caller. `hooks` are told of every rejection.
    """

    def __init__(
        self,
        name: str,
        *,
        max_concurrent: int,
        max_queue: int = 0,
        queue_timeout: float = 0.0,
        hooks: Iterable[BulkheadHook] = (),
    ) -> None:
        if max_concurrent < 1:
            raise ValueError(f"max_concurrent must be at least 1, got {max_concurrent}")
        if max_queue < 0 or queue_timeout < 0:
            raise ValueError("max_queue and queue_timeout must not be negative")
        self.name = name
        self.max_concurrent = max_concurrent
        self._max_queue = max_queue
        self._queue_timeout = queue_timeout
        self._slots = Slots(max_concurrent)
        self._rejected = 0
        self._hooks = tuple(hooks)

    @property
    def in_flight(self) -> int:
        return self._slots.taken

    def stats(self) -> dict[str, int]:
        """`max_concurrent`, `in_flight`, `waiting` (queued now) and `rejected` (so far)."""
        slots = self._slots
        return {
            "max_concurrent": self.max_concurrent,
            "in_flight": slots.taken,
            "waiting": slots.waiting,
            "rejected": self._rejected,
        }

    async def __aenter__(self) -> None:
        if not await self.enter():
            raise BulkheadFullError(self.name, self.max_concurrent)

    async def __aexit__(self, *exc_info: object) -> None:
        self._slots.give_back()

    def try_enter(self) -> bool:
        """Take a free place without waiting or counting anything: pair a True with
        `leave()`; after a False, `enter()` queues (or refuses)."""
        return self._slots.try_take()

    async def enter(self) -> bool:
        """Take a place, queueing if the queue has room: False (counted as a rejection)
        when it has none or the wait ran out. Pair a True with `leave()`."""
        if self._slots.try_take():
            return True
        queue_has_room = self._slots.waiting < self._max_queue and self._queue_timeout > 0
        if queue_has_room and await self._slots.take(self._queue_timeout):
            return True
        self._rejected += 1
        for hook in self._hooks:
            hook.record_rejection()
        return False

    def leave(self) -> None:
        self._slots.give_back()
