"""Rate limits: token buckets by key, shared by every process through Redis, local when not.

    limiter = RateLimiter(redis=redis, namespace="api")
    per_key = RateLimitPolicy("key", limit=100, window=60)
    decision = await limiter.acquire(f"key:{key_id}", per_key)
    if not decision.allowed:
        ...  # 429, with rate_limit_headers(decision)

One call is one round trip: a Lua script (EVALSHA; EVAL when Redis answers NOSCRIPT, after
a restart) takes the tokens and says what is left, atomically, however many processes and
instances ask at once. It reads Redis's own clock (TIME) rather than being passed the
caller's: every process then measures refill on one clock, so no host's skew gives its
clients more or less than the policy (Redis 5 or later replicates a script by its effects,
which lets a script that read the clock write). A bucket's key expires when the bucket
would be full again.

Redis is never a reason to refuse a call, nor to raise. Every round trip has a short
timeout and goes through a guard (a circuit breaker that opens on one failure), and only so
many go at once (a call whose turn does not come in time is decided locally, without
blaming Redis). When Redis is slow, down or answers garbage, the decision is made in
process, on a bucket of this process's own: the limits then hold per process, each with the
full budget (fail open). Entering and leaving that state is told to hooks and logged (a
warning at most once a minute).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Final, Protocol

from resilience_async._breaker import CircuitBreaker, Guard
from resilience_async._errors import CircuitOpenError
from resilience_async._extras import extra_needed
from resilience_async._hooks import Hooked
from resilience_async._logs import Throttle
from resilience_async._resource import AsyncResource
from resilience_async._slots import Slots
from resilience_async._token_bucket import (
    LocalBuckets,
    RateLimitDecision,
    RateLimitPolicy,
    decide,
)

if TYPE_CHECKING:
    from redis.asyncio import Redis

logger = logging.getLogger("resilience_async.ratelimit")

# KEYS[1]: the bucket; ARGV[1]: microseconds' worth of tokens to take; ARGV[2]: the
# microseconds an empty bucket takes to fill. Returns {1 (allowed) or 0, microseconds until
# the bucket is full}. `take` in _token_bucket.py, in Lua (whose numbers are doubles, exact
# for integers below 2**53); a value it cannot read (not a finite number) is a full bucket.
SCRIPT: Final = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local increment = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local stored = redis.pcall('GET', KEYS[1])
local full_at = nil
if type(stored) == 'string' then full_at = tonumber(stored) end
if full_at == nil or not (full_at >= now) or full_at == math.huge then
  full_at = now
elseif full_at > now + tolerance then
  full_at = now + tolerance
end
full_at = math.floor(full_at)
local after = full_at + increment
if after - now > tolerance then
  return {0, full_at - now}
end
redis.call('SET', KEYS[1], string.format('%d', after), 'PX', math.ceil((after - now) / 1000))
return {1, after - now}
"""
SCRIPT_SHA: Final = hashlib.sha1(SCRIPT.encode(), usedforsecurity=False).hexdigest()
# At most one warning a minute however often Redis comes and goes; the next one counts them.
_WARN_INTERVAL: Final = 60.0


class _Never(Exception):
    """Raised by nothing: what a limiter without Redis catches as NOSCRIPT."""


class RateLimitHook(Protocol):
    """Told of every decision (on the request path: keep it cheap) and of the fallback."""

    def record_decision(self, policy: str, allowed: bool, shared: bool, /) -> None: ...

    def record_fallback(self, active: bool, /) -> None: ...


class RateLimiter(AsyncResource, Hooked[RateLimitHook]):
    """Token buckets by key, under a policy given per call, shared through Redis.

    Entering it loads the script into Redis (best effort: a call loads it anyway when
    Redis does not have it); `aclose()` has nothing to release: the client is the caller's.

    Args:
        redis: where buckets are shared, or None for this process's buckets only.
        namespace: prefix of Redis keys (`namespace:policy:key`) and the metrics label.
        redis_timeout: seconds a round trip may take before the call is decided locally.
        redis_guard: breaker for Redis calls; default: a `CircuitBreaker` that opens on a
            failure and lets one probe through every `redis_cooldown` seconds.
        redis_cooldown: seconds the default breaker skips Redis after a failure.
        redis_max_in_flight: round trips at once; more wait their turn, and one that does
            not come within `redis_timeout` is decided in process (without blaming Redis).
            Keep it below the client's pool size: redis-py's pool refuses a command past
            `max_connections` (100 by default) instead of queueing it.
        local_max_keys: buckets kept in process; the least recently used are forgotten.
        clock: monotonic seconds, for the local buckets (Redis uses its own clock).
        hooks: told of decisions and of the fallback (see `RateLimitHook`).
    """

    def __init__(
        self,
        *,
        redis: Redis | None,
        namespace: str = "ratelimit",
        redis_timeout: float = 0.05,
        redis_guard: Guard | None = None,
        redis_cooldown: float = 5.0,
        redis_max_in_flight: int = 32,
        local_max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
        hooks: Iterable[RateLimitHook] = (),
    ) -> None:
        if not namespace:
            raise ValueError("namespace must not be empty")
        if not 0 < redis_timeout < math.inf:
            raise ValueError(f"redis_timeout must be > 0 seconds, got {redis_timeout}")
        if not 0 < redis_cooldown < math.inf:
            raise ValueError(f"redis_cooldown must be > 0 seconds, got {redis_cooldown}")
        if redis_max_in_flight < 1:
            raise ValueError(f"redis_max_in_flight must be >= 1, got {redis_max_in_flight}")
        if local_max_keys < 1:
            raise ValueError(f"local_max_keys must be >= 1, got {local_max_keys}")
        self.namespace = namespace
        self._redis = redis
        self._timeout = redis_timeout
        self._failures: tuple[type[Exception], ...] = ()
        self._no_script: type[Exception] = _Never
        if redis is not None:
            with extra_needed("resilience_async.RateLimiter"):
                self._failures, self._no_script = _redis_failures()
        self._guard = redis_guard or CircuitBreaker(
            name=f"redis {namespace}",
            failure_threshold=1,
            failure_rate_threshold=None,
            reset_timeout=redis_cooldown,
            default_hooks=False,  # this limiter logs the fallback itself, throttled
        )
        self._in_flight = Slots(redis_max_in_flight)
        self._local = LocalBuckets(local_max_keys, clock)
        self._fallback = False
        self._announced = False  # a warning went out, so its recovery is logged too
        self._warnings = Throttle(_WARN_INTERVAL)
        self._allowed: dict[str, int] = {}
        self._refused: dict[str, int] = {}
        self._decided_locally = 0
        self._hooks = tuple(hooks)

    @property
    def fallback(self) -> bool:
        """Whether calls are decided in process because Redis is unavailable."""
        return self._fallback

    def stats(self) -> dict[str, Any]:
        """Decisions so far and the state now.

        Keys: `allowed` and `refused` (policy name -> count), `local` (decisions made in
        process), `fallback` (1 while Redis is unavailable), `buckets` (held in process).
        """
        return {
            "allowed": dict(self._allowed),
            "refused": dict(self._refused),
            "local": self._decided_locally,
            "fallback": int(self._fallback),
            "buckets": len(self._local),
        }

    async def acquire(
        self, key: str, policy: RateLimitPolicy, *, cost: int = 1
    ) -> RateLimitDecision:
        """Take `cost` tokens from `key`'s bucket under `policy`, or refuse: never raises
        because of Redis.

        Args:
            key: whose bucket ("key:<api key id>", "addr:<client address>").
            policy: its size and refill; buckets of different policies are distinct.
            cost: tokens the call takes, from 1 to the policy's capacity.
        """
        if isinstance(cost, bool) or not isinstance(cost, int) or not 1 <= cost <= policy.capacity:
            raise ValueError(f"cost must be an integer in [1, {policy.capacity}], got {cost!r}")
        bucket = f"{self.namespace}:{policy.name}:{key}"
        if self._redis is not None:
            taken = await self._shared(bucket, policy, cost)
            if taken is not None:
                return self._decided(policy, cost, *taken, shared=True)
        allowed, full_after = self._local.take(bucket, policy, cost)
        return self._decided(policy, cost, allowed, full_after, shared=False)

    async def aclose(self) -> None:
        """Nothing to release: no task runs in the background, and the client is yours."""

    async def _open(self) -> None:
        if self._redis is None:
            return
        try:
            async with asyncio.timeout(self._timeout):
                await self._redis.script_load(SCRIPT)
        except self._failures as exc:
            logger.debug("rate limit script not loaded: %s", _describe(exc))

    # --- Redis -------------------------------------------------------------------------
    async def _shared(
        self, bucket: str, policy: RateLimitPolicy, cost: int
    ) -> tuple[bool, int] | None:
        """Redis's decision (allowed, microseconds until full), or None when there is none
        to be had within the timeout."""
        turns = self._in_flight
        if not turns.try_take() and not await turns.take(self._timeout):
            return None  # our own calls queued past the timeout: no fault of Redis's
        interval = policy.interval_us
        try:
            taken = await self._guard.call_async(
                self._shared_take, bucket, cost * interval, policy.capacity * interval
            )
        except self._failures as exc:
            self._fall_back(exc)
            return None
        finally:
            turns.give_back()
        if self._fallback:
            self._recover()
        return taken

    async def _shared_take(self, bucket: str, increment: int, tolerance: int) -> tuple[bool, int]:
        # Inside the guard, so that a timeout counts as a failure of Redis.
        async with asyncio.timeout(self._timeout):
            reply = await self._run_script(bucket, increment, tolerance)
        return _parse(reply)

    async def _run_script(self, bucket: str, increment: int, tolerance: int) -> object:
        assert self._redis is not None
        try:
            return await self._redis.evalsha(SCRIPT_SHA, 1, bucket, increment, tolerance)
        except self._no_script:  # Redis restarted, or its script cache was flushed
            return await self._redis.eval(SCRIPT, 1, bucket, increment, tolerance)

    # --- outcomes ------------------------------------------------------------------------
    def _decided(
        self, policy: RateLimitPolicy, cost: int, allowed: bool, full_after: int, *, shared: bool
    ) -> RateLimitDecision:
        counts = self._allowed if allowed else self._refused
        counts[policy.name] = counts.get(policy.name, 0) + 1
        if not shared:
            self._decided_locally += 1
        for hook in self._hooks:
            hook.record_decision(policy.name, allowed, shared)
        return decide(policy, cost, allowed, full_after, shared=shared)

    def _fall_back(self, exc: Exception) -> None:
        if self._fallback:
            return  # the breaker refusing while Redis is away: nothing new to say
        self._fallback = True
        for hook in self._hooks:
            hook.record_fallback(True)
        if times := self._warnings.count():
            self._announced = True
            logger.warning(
                "redis unavailable; rate limits decided in each process, with its full budget",
                extra={"limiter": self.namespace, "error": _describe(exc), "times": times},
            )

    def _recover(self) -> None:
        self._fallback = False
        for hook in self._hooks:
            hook.record_fallback(False)
        if self._announced:
            self._announced = False
            extra = {"limiter": self.namespace}
            logger.info("redis available again; rate limits shared", extra=extra)


def _redis_failures() -> tuple[tuple[type[Exception], ...], type[Exception]]:
    """What a round trip may fail with (the guard refusing, Redis's errors, our timeout, a
    reply we can't read), and Redis's NOSCRIPT error; redis is imported only when given."""
    from redis.exceptions import NoScriptError  # noqa: PLC0415 - only when sharing

    from resilience_async._breaker.shared import sharing_errors  # noqa: PLC0415

    return (CircuitOpenError, *sharing_errors()), NoScriptError


def _parse(reply: object) -> tuple[bool, int]:
    """The script's `[allowed, microseconds until full]`; ValueError for anything else."""
    match reply:
        case [0 | 1 as allowed, int(full_after)] if full_after >= 0:
            return allowed == 1, full_after
    raise ValueError(f"unexpected reply from the rate limit script: {reply!r}")


def _describe(exc: BaseException) -> str:
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
