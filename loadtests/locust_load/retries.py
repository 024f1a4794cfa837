"""A careful client's retries of an order write: the same Idempotency-Key, a few times, later.

A write answered 503, another 5xx or nothing at all may or may not have been committed; only
a retry with the same key tells, and the service answers it without creating a second order.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

MAX_ATTEMPTS = 3
BACKOFF = 0.5  # s before the second attempt; doubled before each next one


@dataclass(frozen=True, slots=True)
class OrderAttempt:
    """One try at creating an order: its key, its JSON body, and which try it is."""

    key: str
    body: bytes
    attempt: int = 1

    def next(self) -> OrderAttempt:
        return replace(self, attempt=self.attempt + 1)


def retryable(status: int) -> bool:
    """No answer or a 5xx: the outcome is unknown (or the service asked to come back)."""
    return status == 0 or status >= 500


class RetryQueue:
    """A user's order writes waiting to be retried, each due after its backoff."""

    def __init__(self) -> None:
        self._waiting: list[tuple[float, OrderAttempt]] = []

    def __len__(self) -> int:
        return len(self._waiting)

    def failed(self, order: OrderAttempt, status: int, at: float) -> bool:
        """Queue the next attempt if `status` calls for one and attempts remain; say so."""
        if not retryable(status) or order.attempt >= MAX_ATTEMPTS:
            return False
        self._waiting.append((at + BACKOFF * 2 ** (order.attempt - 1), order.next()))
        return True

    def due(self, now: float) -> OrderAttempt | None:
        """The oldest retry due by `now` (taken off the queue), or None."""
        for i, (due, order) in enumerate(self._waiting):
            if due <= now:
                del self._waiting[i]
                return order
        return None
