"""Token buckets: the policy, the decision, and the arithmetic the Redis and local stores share.

A bucket holds up to `capacity` tokens and regains `limit` of them every `window` seconds; a
call takes `cost` tokens, or is refused. As GCRA (the ATM networks' Generic Cell Rate
Algorithm, also redis-cell's and throttled's) keeps it, a bucket is a single number: the
moment it will be full again, `full_at`. The tokens it holds at `now` are
`capacity - (full_at - now) / interval`; a full bucket needs no state at all, so a stored
bucket can expire the moment it would be full again.

Time is counted in whole microseconds (Redis TIME's resolution), so that a bucket's arithmetic
is exact: `capacity` intervals summed one by one make exactly the time an empty bucket takes
to fill, and no rounding error refuses its last token. An interval is rounded to the
microsecond, which changes a policy's rate by less than a microsecond per token.
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

MICROS: Final = 1_000_000
# Microsecond counts stay exact in a double (Lua's number) below 2**53: Redis's clock is
# near 2**51 us since the epoch, which leaves an empty bucket about a century to fill.
_MAX_TOLERANCE: Final = 10**9  # seconds
# Names travel in Redis keys, metric labels and header fields (as structured-field strings):
# a short, plain alphabet needs no escaping in any of them.
_NAME: Final = re.compile(r"[A-Za-z0-9_.-]{1,64}")


@dataclass(frozen=True, slots=True)
class RateLimitPolicy:
    """`limit` calls per `window` seconds, in bursts of up to `burst` (default: `limit`).

    Args:
        name: names the policy in Redis keys, metrics and the `RateLimit` header fields:
            1 to 64 letters, digits, `_`, `.` or `-`.
        limit: tokens regained every `window` seconds (the sustained rate).
        window: seconds; a whole number of them is also advertised (`w=` of
            `RateLimit-Policy`), since the header fields have no sub-second precision.
        burst: the bucket's capacity: calls a client that was idle may make at once.
    """

    name: str
    limit: int
    window: float
    burst: int | None = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise ValueError(f"policy name must be 1-64 of [A-Za-z0-9_.-], got {self.name!r}")
        _positive_int("limit", self.limit)
        if self.burst is not None:
            _positive_int("burst", self.burst)
        if not 0 < self.window < math.inf:
            raise ValueError(f"window must be a finite number of seconds > 0, got {self.window}")
        if self.interval_us < 1:
            raise ValueError(f"limit must be at most one per microsecond of window, got {self}")
        if self.tolerance > _MAX_TOLERANCE:
            raise ValueError(f"an empty bucket must fill within {_MAX_TOLERANCE} s, got {self}")

    @property
    def capacity(self) -> int:
        """Tokens a full bucket holds."""
        return self.limit if self.burst is None else self.burst

    @property
    def interval(self) -> float:
        """Seconds the bucket takes to regain one token."""
        return self.interval_us / MICROS

    @property
    def tolerance(self) -> float:
        """Seconds an empty bucket takes to fill: how far ahead of now `full_at` may be."""
        return self.capacity * self.interval_us / MICROS

    @property
    def interval_us(self) -> int:
        return round(self.window * MICROS / self.limit)


def _positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


@dataclass(frozen=True, slots=True)
class RateLimitDecision:
    """What a rate limiter decided for one call, with what the HTTP layer tells the client.

    Args:
        allowed: the call may go on (its tokens were taken).
        remaining: whole tokens left in the bucket: the calls that would be allowed now.
        retry_after: seconds until a call of the same cost would be allowed (0 when one would
            be now): `Retry-After` of a refusal.
        reset_after: seconds until the bucket is full again, if no call takes from it.
        policy: the policy decided under.
        shared: decided in Redis, for every process; False: by this process alone (Redis
            unavailable, or none given).
    """

    allowed: bool
    remaining: int
    retry_after: float
    reset_after: float
    policy: RateLimitPolicy
    shared: bool


def take(full_at: int, now: int, increment: int, tolerance: int) -> tuple[bool, int]:
    """Take `increment` us worth of tokens from the bucket full at `full_at` (us), if it
    holds them: whether it did, and when the bucket is full now.

    The Lua script in `_rate_limit.py` does the same in Redis: keep them alike.
    """
    if full_at < now:
        full_at = now
    elif full_at > now + tolerance:  # written under a longer window, or before a clock jump
        full_at = now + tolerance
    after = full_at + increment
    if after - now > tolerance:
        return False, full_at
    return True, after


def decide(
    policy: RateLimitPolicy, cost: int, allowed: bool, full_after: int, *, shared: bool
) -> RateLimitDecision:
    """The decision for a bucket that will be full `full_after` microseconds from now."""
    interval = policy.interval_us
    tolerance = policy.capacity * interval
    remaining = min(policy.capacity, max(0, (tolerance - full_after) // interval))
    wait = full_after + cost * interval - tolerance
    return RateLimitDecision(
        allowed=allowed,
        remaining=remaining,
        retry_after=max(0, wait) / MICROS,
        reset_after=max(0, full_after) / MICROS,
        policy=policy,
        shared=shared,
    )


class LocalBuckets:
    """Buckets held in this process, the least recently used forgotten past `max_keys`.

    A forgotten bucket is a full one: under memory pressure the limits loosen, never tighten.
    """

    def __init__(self, max_keys: int, clock: Callable[[], float]) -> None:
        self._max_keys = max_keys
        self._clock = clock
        self._full_at: OrderedDict[str, int] = OrderedDict()

    def __len__(self) -> int:
        return len(self._full_at)

    def take(self, key: str, policy: RateLimitPolicy, cost: int) -> tuple[bool, int]:
        """Whether `cost` tokens were taken from `key`'s bucket, and microseconds until it
        is full."""
        now = round(self._clock() * MICROS)
        held = self._full_at.pop(key, now)
        interval = policy.interval_us
        allowed, full_at = take(held, now, cost * interval, policy.capacity * interval)
        if full_at > now:  # a full bucket is the same as none
            self._full_at[key] = full_at
            if len(self._full_at) > self._max_keys:
                self._full_at.popitem(last=False)
        return allowed, full_at - now
