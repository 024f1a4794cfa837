"""Retries that never multiply an outage: full-jitter backoff, bounded by a retry budget.

A fixed "retry 3 times" turns every failing request into 3 or 4: an outage of the upstream
becomes a load spike on it just when it is weakest. A retry budget allows retries only up to
a fraction of recent requests (Finagle's and Envoy's design), so under a total outage the
extra load stays at that fraction, while a healthy service's odd failure is still retried.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Which failures are retried and how long to wait between attempts.

    Args:
        attempts: total attempts, the first included (1 disables retries).
        base_delay: seconds; the n-th retry waits a random time in [0, base * 2**(n-1)].
        max_delay: cap on any single wait, seconds (also caps an upstream's Retry-After).
        retry_statuses: answers worth another attempt (overload and gateway errors).
    """

    attempts: int = 3
    base_delay: float = 0.05
    max_delay: float = 1.0
    retry_statuses: frozenset[int] = RETRYABLE_STATUSES
    rng: Callable[[], float] = field(default=random.random, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {self.attempts}")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("base_delay and max_delay must not be negative")

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds before retry number `retry` (1-based): full jitter, or the upstream's hint."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_delay)
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** (retry - 1))
        return ceiling * self.rng()


class RetryBudget:
    """Retries allowed as a fraction of the requests of the last `window` seconds.

    Args:
        ratio: retries per request allowed over the window (0.2: one retry per five requests).
        min_per_second: retries always allowed per second, so a quiet service still retries.
        window: seconds of history, kept in one-second buckets.
    """

    def __init__(
        self,
        *,
        ratio: float = 0.2,
        min_per_second: float = 1.0,
        window: int = 10,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 <= ratio <= 1 or min_per_second < 0 or window < 1:
            raise ValueError("need 0 <= ratio <= 1, min_per_second >= 0 and window >= 1")
        self._ratio = ratio
        self._reserve = min_per_second * window
        self._window = window
        self._clock = clock
        self._requests = [0] * window
        self._retries = [0] * window
        self._second = int(clock())

    def record_request(self) -> None:
        self._requests[self._advance()] += 1

    def try_spend(self) -> bool:
        """Take one retry from the budget; False when it is spent."""
        slot = self._advance()
        allowed = self._reserve + self._ratio * sum(self._requests) - sum(self._retries)
        if allowed < 1:
            return False
        self._retries[slot] += 1
        return True

    def _advance(self) -> int:
        """Clear the buckets of the seconds that passed; the current second's index."""
        now = int(self._clock())
        elapsed = now - self._second
        if elapsed > 0:
            for second in range(self._second + 1, self._second + 1 + min(elapsed, self._window)):
                self._requests[second % self._window] = 0
                self._retries[second % self._window] = 0
            self._second = now
        return now % self._window
