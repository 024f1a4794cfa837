"""Tips: the upstream's, through the breaker and the fallback cache, never an error.

Live while the upstream answers; cached while fresh; stale while it fails; the built-in
tips when nothing usable is cached.
"""

from __future__ import annotations

import functools
from typing import Any

from resilience_async import (
    CacheResult,
    CircuitBreaker,
    FallbackCache,
    ResilientClient,
)

# Served when the upstream fails and nothing is cached: evergreen, honest, never an error.
FALLBACK_TIPS: list[dict[str, Any]] = [
    {"id": 0, "text": "Set a timeout on every call that leaves the process."},
    {"id": -1, "text": "Live tips are unavailable right now; these are built in."},
]
Tips = list[dict[str, Any]]


class TipsService:
    """The upstream's tips, with what to serve while it fails.

    Args:
        client: the upstream's resilient client (its breaker guards every attempt).
        cache: the fallback cache the tips are kept in.
        breaker: the client's breaker: while it refuses calls, stale tips are served at once.
        ttl: seconds fetched tips are served without asking the upstream.
        stale_ttl: seconds after `ttl` that they may still be served while it fails.
        stale_budget: seconds a request waits for a refresh when stale tips are at hand
            (then it gets them, and the refresh goes on); None: wait for the refresh.
    """

    def __init__(
        self,
        *,
        client: ResilientClient,
        cache: FallbackCache,
        breaker: CircuitBreaker | None,
        ttl: float,
        stale_ttl: float,
        stale_budget: float | None = None,
    ) -> None:
        self._cache = cache
        self._load = functools.partial(_load_tips, client)
        self._breaker = breaker
        self._ttl = ttl
        self._stale_ttl = stale_ttl
        self._stale_budget = stale_budget

    async def get(self) -> CacheResult[Tips]:
        """Live, or cached, or stale while the upstream fails, or the built-in tips."""
        return await self._cache.get(
            "tips",
            self._load,
            ttl=self._ttl,
            stale_ttl=self._stale_ttl,
            fallback=FALLBACK_TIPS,
            breaker=self._breaker,
            stale_budget=self._stale_budget,
        )


async def _load_tips(client: ResilientClient) -> Tips:
    # The answer is no local of this frame: the error's traceback keeps the frame (until the
    # cycle collector runs) and must not keep a body of up to UPSTREAM_MAX_BODY with it.
    tips = _tips_in(await client.get_json("/tips"))
    if tips is None:  # counted and logged as the client's own unusable answers
        raise client.unusable("wrong_shape", "answered JSON without a list of tips")
    return tips


def _tips_in(body: Any) -> Tips | None:
    tips = body.get("tips") if isinstance(body, dict) else None
    return tips if isinstance(tips, list) else None
