"""Rate limits on callers: per API key on writes, per client address on every API request.

Both are token buckets of `resilience_async.RateLimiter`, shared through Redis in one round
trip (and decided in process, failing open, while Redis is slow or down). A refusal is a
429 with `Retry-After` and the IETF `RateLimit-Policy` / `RateLimit` header fields.
"""

from __future__ import annotations

import functools

from app.errors import ApiError
from app.keys import Caller
from resilience_async import RateLimitDecision, RateLimiter, RateLimitPolicy, rate_limit_headers

Rate = tuple[int, float]  # requests per seconds


class RateLimited(ApiError):
    """Past a limit: 429, saying when to come back and what the policy is."""

    status = 429
    code = "rate_limited"

    def __init__(self, decision: RateLimitDecision, what: str) -> None:
        self.headers = rate_limit_headers(decision)
        wait = self.headers["Retry-After"]
        super().__init__(f"{what} is past its limit of {_said(decision.policy)}; retry after "
                         f"{wait} s")  # fmt: skip


class CallerLimits:
    """The limits a request must be within.

    Args:
        limiter: the shared token buckets.
        per_key: a key's limit when it has none of its own; None: keys are not limited.
        per_address: every client address's limit on API requests; None: off.
    """

    def __init__(self, limiter: RateLimiter, *, per_key: Rate | None,
                 per_address: Rate | None) -> None:  # fmt: skip
        self._limiter = limiter
        self._per_key = per_key
        self._address = None if per_address is None else _policy("address", *per_address)

    async def check_key(self, caller: Caller) -> None:
        """Take one token from the caller's key; RateLimited when there is none."""
        if caller.rate_limit is not None and caller.rate_window is not None:
            policy = _policy("key", caller.rate_limit, caller.rate_window)
        elif self._per_key is not None:
            policy = _policy("key", *self._per_key)
        else:
            return
        decision = await self._limiter.acquire(f"key:{caller.key_id}", policy)
        if not decision.allowed:
            raise RateLimited(decision, f"the API key {caller.name!r}")

    async def check_address(self, address: str) -> None:
        """Take one token from the client address's bucket, when addresses are limited."""
        if self._address is None:
            return
        decision = await self._limiter.acquire(f"addr:{address}", self._address)
        if not decision.allowed:
            raise RateLimited(decision, "this client address")


@functools.lru_cache(maxsize=256)
def _policy(name: str, limit: int, window: float) -> RateLimitPolicy:
    return RateLimitPolicy(name, limit, window)


def _said(policy: RateLimitPolicy) -> str:
    return f"{policy.limit} requests per {policy.window:g} s"
