"""Fallback cache: an in-process tier over a Redis tier, stale-if-error, single flight.

Each entry is fresh for `ttl` seconds after it was loaded, then usable for `stale_ttl` more
seconds, but only when a live load fails (RFC 5861's stale-if-error). Concurrent misses for a
key share one load. Hot keys are renewed before they expire by probabilistic early refresh
(XFetch: Vattani, Chierichetti and Lowenstein, "Optimal probabilistic cache stampede
prevention", VLDB 2015).

Redis is an optimisation, never a dependency: every Redis call has a short timeout and goes
through a guard (a circuit breaker), and every Redis failure degrades to the local tier. Entries
carry the wall-clock time they were loaded at, so freshness reads the same in every process.
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import math
import random
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Final, Generic, Literal, Protocol, TypeVar

from resilience_async._breaker import CircuitBreaker, Guard
from resilience_async._errors import CircuitOpenError, FallbackUnavailableError, ResilienceError
from resilience_async._hooks import Hooked
from resilience_async._resource import AsyncResource

if TYPE_CHECKING:
    from redis.asyncio import Redis

# Named as it was before the module turned private: log configurations keep working.
logger = logging.getLogger("resilience_async.cache")

T = TypeVar("T")
R = TypeVar("R")
Source = Literal["live", "cache", "stale", "fallback"]
_SOURCES: Final[tuple[Source, ...]] = ("live", "cache", "stale", "fallback")
_INF: Final = math.inf
# Each write takes a pooled connection for up to redis_timeout: past this many in flight,
# Redis is not keeping up, and more writes would only open more connections to it.
_MAX_PENDING_WRITES: Final = 32
# With a ttl near 0 every request loads: a key is then written to Redis, or looked up there
# after a failed load, at most once per interval. The Redis copy is a stale-if-error value
# for other processes, and does not need refreshing on every request.
_REDIS_INTERVAL: Final = 1.0
# random.random() returns multiples of 2**-53, so -log(rng()) never exceeds 53 ln 2 (unless
# rng() is 0): an entry further than beta * delta * this from expiry needs no random draw.
_XFETCH_REACH: Final = 53 * math.log(2)


class _Missing(enum.Enum):
    MISSING = enum.auto()


MISSING: Final = _Missing.MISSING


@dataclass(frozen=True, slots=True)
class CacheResult(Generic[T]):
    """A served value and where it came from.

    Args:
        value: the value.
        source: live (just loaded), cache (fresh), stale (load failed, served past its ttl),
            fallback (load failed, nothing usable cached: the caller's declared fallback).
        age: seconds since the value was loaded (0 for live and fallback).
        error: why the live load failed, for stale and fallback.
    """

    value: T
    source: Source
    age: float
    error: str | None


class CacheHook(Protocol):
    """Told where every served value came from (on the request path: keep it cheap)."""

    def record_served(self, source: Source, /) -> None: ...


class Refusing(Protocol):
    """What the cache reads of a circuit breaker: its name, and how long it refuses calls."""

    @property
    def name(self) -> str: ...

    @property
    def retry_after(self) -> float: ...


@dataclass(frozen=True, slots=True)
class _Entry:
    value: Any
    loaded_at: float  # wall clock, comparable across processes
    duration: float  # seconds the load took: XFetch's delta


class FallbackCache(AsyncResource, Hooked[CacheHook]):
    """An in-process LRU tier plus a Redis tier, serving stale or fallback values on errors.

    Entering it opens nothing (loads and writes start on the caller's loop as they come);
    `aclose()` waits for those in flight.

    Args:
        redis: the shared tier, or None for the local tier only. Its lifetime is the caller's.
        namespace: prefix of Redis keys (`namespace:key`) and the metrics label.
        redis_timeout: seconds each Redis call may take before it counts as a failure.
        redis_guard: breaker for Redis calls; default: a `CircuitBreaker` that opens on a
            failure and lets one probe through every `redis_cooldown` seconds.
        redis_cooldown: seconds the default breaker skips Redis after a failure.
        local_max_entries: entries kept in process; the least recently used go first.
        early_refresh: XFetch's beta; 1.0 is the paper's optimum, 0 turns it off.
        single_flight: concurrent misses of a key share one load (False: one load each,
            in the caller's task, for values that must be fetched per request).
        clock: wall-clock seconds (entries are compared across processes).
        rng: uniform in [0, 1), for early refresh.
        hooks: told the source of every value served (see `CacheHook`).
    """

    def __init__(
        self,
        *,
        redis: Redis | None,
        namespace: str = "cache",
        redis_timeout: float = 0.05,
        redis_guard: Guard | None = None,
        redis_cooldown: float = 5.0,
        local_max_entries: int = 1024,
        early_refresh: float = 1.0,
        single_flight: bool = True,
        clock: Callable[[], float] = time.time,
        rng: Callable[[], float] = random.random,
        hooks: Iterable[CacheHook] = (),
    ) -> None:
        if not namespace:
            raise ValueError("namespace must not be empty")
        if not 0 < redis_timeout < _INF:
            raise ValueError(f"redis_timeout must be > 0 seconds, got {redis_timeout}")
        if not 0 < redis_cooldown < _INF:
            raise ValueError(f"redis_cooldown must be > 0 seconds, got {redis_cooldown}")
        if local_max_entries < 1:
            raise ValueError(f"local_max_entries must be >= 1, got {local_max_entries}")
        if not 0 <= early_refresh < _INF:
            raise ValueError(f"early_refresh must be >= 0, got {early_refresh}")
        self.namespace = namespace
        self._redis = redis
        self._redis_timeout = redis_timeout
        if redis_guard is None:
            redis_guard = CircuitBreaker(
                name=f"redis {namespace}",
                failure_threshold=1,
                failure_rate_threshold=None,
                reset_timeout=redis_cooldown,
            )
        self._guard = redis_guard
        self._max_entries = local_max_entries
        self._beta = early_refresh
        self._single_flight = single_flight
        self._reach = early_refresh * _XFETCH_REACH
        self._clock = clock
        self._rng = rng
        self._local: OrderedDict[str, _Entry] = OrderedDict()
        self._flights: dict[str, asyncio.Task[tuple[Source, _Entry]]] = {}
        self._flown_since: dict[str, float] = {}  # loop time each flight started at
        self._failing: set[str] = set()  # keys whose last load failed
        self._writes: dict[str, asyncio.Task[None]] = {}
        self._loads: set[asyncio.Task[tuple[Source, _Entry]]] = set()  # without single flight
        self._written_at: dict[str, float] = {}
        self._asked_at: dict[str, float] = {}
        self._served: dict[str, int] = dict.fromkeys(_SOURCES, 0)
        self._hooks = tuple(hooks)

    def stats(self) -> dict[str, int]:
        """Values served by source (`live`, `cache`, `stale`, `fallback`), and what is held
        now: `entries` in the local tier, `loads` in flight, pending Redis `writes`."""
        return {
            **self._served,
            "entries": len(self._local),
            "loads": len(self._flights) + len(self._loads),
            "writes": len(self._writes),
        }

    def _count(self, source: Source) -> None:
        self._served[source] += 1
        for hook in self._hooks:
            hook.record_served(source)

    async def get(
        self,
        key: str,
        load: Callable[[], Awaitable[T]],
        *,
        ttl: float,
        stale_ttl: float,
        fallback: T | _Missing = MISSING,
        breaker: Refusing | None = None,
        stale_budget: float | None = None,
    ) -> CacheResult[T]:
        """The value of `key`: cached while fresh, else loaded, else stale, else `fallback`.

        Args:
            load: coroutine function producing the value; concurrent misses share one call.
            ttl: seconds a loaded value is served without loading; 0 loads on every call and
                keeps the value only for stale-if-error.
            stale_ttl: seconds after `ttl` that a value may still be served when a load fails.
            fallback: served when the load fails and nothing within its stale window is cached.
            breaker: the breaker guarding `load`; while it refuses calls, a load is not even
                started when something is cached: stale data is served at once.
            stale_budget: seconds, from the start of a load, that callers wait for it when a
                stale value is at hand; past them, the stale value is served at once and the
                load goes on in the background, to refresh the entry for the next callers
                (RFC 5861 stale-while-revalidate). Once a load of the key has failed, no one
                waits until one succeeds. None: wait for the load.

        Raises:
            FallbackUnavailableError: the load failed and there was nothing to serve.
        """
        if not (0 <= ttl < _INF and 0 <= stale_ttl < _INF):
            _check_ttls(ttl, stale_ttl)
        if stale_budget is not None and not 0 <= stale_budget < _INF:
            raise ValueError(f"stale_budget must be >= 0 seconds, got {stale_budget}")
        # The hot path: a dict lookup and a clock read, no Redis, no task.
        entry = self._local.get(key)
        if entry is not None:
            now = self._clock()
            expiry = entry.loaded_at + ttl
            if now < expiry:
                self._local.move_to_end(key)
                if (
                    entry.duration * self._reach > expiry - now
                    and key not in self._flights
                    and self._xfetch(entry, expiry, now)
                ):
                    self._start_flight(key, load, ttl, stale_ttl)
                self._count("cache")
                return CacheResult(entry.value, "cache", max(0.0, now - entry.loaded_at), None)
            if breaker is not None and breaker.retry_after > 0 and key not in self._flights:
                refused = CircuitOpenError(breaker.name, breaker.retry_after)
                return self._degrade(key, refused, ttl + stale_ttl, fallback)
        return await self._get_slow(key, load, ttl, stale_ttl, fallback, stale_budget=stale_budget)

    async def invalidate(self, key: str) -> None:
        """Forget `key` in both tiers (a load or write already in flight may store it again)."""
        self._local.pop(key, None)
        if self._redis is not None:
            try:
                await self._guard.call_async(self._timed, self._redis.delete, self._rkey(key))
            except Exception as exc:
                logger.debug("redis delete of %r failed: %s", key, _describe(exc))

    async def aclose(self) -> None:
        """Wait for loads and refreshes in flight and for pending Redis writes.

        The Redis client is not closed: it belongs to whoever made it.
        """
        while pending := {*self._flights.values(), *self._writes.values(), *self._loads}:
            # asyncio.wait, not gather: cancelling aclose must not cancel loads others await.
            await asyncio.wait(pending)

    # --- loading -------------------------------------------------------------------------
    async def _get_slow(
        self,
        key: str,
        load: Callable[[], Awaitable[T]],
        ttl: float,
        stale_ttl: float,
        fallback: T | _Missing,
        *,
        stale_budget: float | None,
    ) -> CacheResult[T]:
        stale = self._usable(key, ttl + stale_ttl) if stale_budget is not None else None
        try:
            if stale is not None and stale_budget is not None:
                return await self._within_budget(
                    key, load, ttl, stale_ttl, stale=stale, budget=stale_budget
                )
            if self._single_flight:
                flight = self._flights.get(key) or self._start_flight(key, load, ttl, stale_ttl)
                # Shielded: one caller's cancellation must not cancel the load others wait for.
                source, entry = await asyncio.shield(flight)
            else:
                source, entry = await self._fly(key, load, ttl, stale_ttl)
        except Exception as exc:
            return self._degrade(key, exc, ttl + stale_ttl, fallback)
        return self._served_from(source, entry)

    async def _within_budget(
        self,
        key: str,
        load: Callable[[], Awaitable[T]],
        ttl: float,
        stale_ttl: float,
        *,
        stale: _Entry,
        budget: float,
    ) -> CacheResult[T]:
        """The load's value if it comes within `budget` seconds of the load's start, else
        `stale` while the load goes on in the background (it refreshes the entry when it
        lands): callers who come once a refresh has outrun the budget do not wait at all."""
        loop = asyncio.get_running_loop()
        # The last load of this key failed: the upstream is not answering; a caller is
        # served stale at once rather than wait for another attempt to fail the same way.
        wait = 0.0 if key in self._failing else budget
        if self._single_flight:
            flight = self._flights.get(key) or self._start_flight(key, load, ttl, stale_ttl)
            deadline = self._flown_since[key] + wait
        else:
            flight = self._background(self._fly(key, load, ttl, stale_ttl))
            deadline = loop.time() + wait
        try:
            async with asyncio.timeout_at(deadline):
                source, entry = await asyncio.shield(flight)
        except TimeoutError:
            self._count("stale")
            age = max(0.0, self._clock() - stale.loaded_at)
            return CacheResult(stale.value, "stale", age, f"refresh still running after {wait} s")
        return self._served_from(source, entry)

    def _served_from(self, source: Source, entry: _Entry) -> CacheResult[Any]:
        self._count(source)
        age = 0.0 if source == "live" else max(0.0, self._clock() - entry.loaded_at)
        return CacheResult(entry.value, source, age, None)

    def _usable(self, key: str, keep: float) -> _Entry | None:
        """The local entry of `key` if it is still within its stale window."""
        entry = self._local.get(key)
        return entry if entry is not None and self._clock() < entry.loaded_at + keep else None

    def _background(
        self, load: Awaitable[tuple[Source, _Entry]]
    ) -> asyncio.Task[tuple[Source, _Entry]]:
        """A load that outlives the caller who started it; `aclose()` waits for it."""
        task = asyncio.ensure_future(load)
        self._loads.add(task)
        task.add_done_callback(self._background_done)
        return task

    def _background_done(self, task: asyncio.Task[tuple[Source, _Entry]]) -> None:
        self._loads.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            logger.debug("background load failed: %s", _describe(exc))

    def _degrade(
        self, key: str, exc: Exception, keep: float, fallback: T | _Missing
    ) -> CacheResult[T]:
        """Stale if within its window, else the fallback, else FallbackUnavailableError."""
        error = _describe(exc)
        if not isinstance(exc, ResilienceError):
            # Not a dependency failing the expected way: a bug, or a failure nobody translated.
            logger.warning("load of %r raised %s; degrading", key, error, exc_info=exc)
        entry = self._usable(key, keep)
        if entry is not None:
            self._count("stale")
            age = max(0.0, self._clock() - entry.loaded_at)
            return CacheResult(entry.value, "stale", age, error)
        if isinstance(fallback, _Missing):
            raise FallbackUnavailableError(key) from exc
        self._count("fallback")
        return CacheResult(fallback, "fallback", 0.0, error)

    def _start_flight(
        self, key: str, load: Callable[[], Awaitable[Any]], ttl: float, stale_ttl: float
    ) -> asyncio.Task[tuple[Source, _Entry]]:
        flight = asyncio.create_task(
            self._fly(key, load, ttl, stale_ttl), name=f"cache load {self.namespace}:{key}"
        )
        self._flights[key] = flight
        self._flown_since[key] = asyncio.get_running_loop().time()
        flight.add_done_callback(partial(self._landed, key))
        return flight

    def _landed(self, key: str, flight: asyncio.Task[tuple[Source, _Entry]]) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
            del self._flown_since[key]
        # Retrieved here: an early refresh has no waiter, and its failure is no one's error.
        if not flight.cancelled() and (exc := flight.exception()) is not None:
            logger.debug("load of %r failed: %s", key, _describe(exc))

    async def _fly(
        self, key: str, load: Callable[[], Awaitable[Any]], ttl: float, stale_ttl: float
    ) -> tuple[Source, _Entry]:
        """One shared load: a fresher value from Redis if another process has one, else load."""
        if ttl > 0:
            remote = await self._redis_read(key)
            if (
                remote is not None
                and self._adopt(key, remote)
                and self._clock() < remote.loaded_at + ttl
            ):
                return "cache", remote
        started = self._clock()
        try:
            value = await load()
        except Exception:
            if len(self._failing) < self._max_entries:
                self._failing.add(key)
            # Redis was not read (ttl 0): with nothing local to fall back on, another
            # process may have stored a value there (asked once per interval, not per call).
            if ttl == 0 and key not in self._local and self._due(self._asked_at, key, started):
                remote = await self._redis_read(key)
                if remote is not None:
                    self._adopt(key, remote)
            raise
        self._failing.discard(key)
        loaded_at = self._clock()
        entry = _Entry(value, loaded_at, max(0.0, loaded_at - started))
        self._store(key, entry)
        self._write_behind(key, entry, ttl + stale_ttl)
        return "live", entry

    def _xfetch(self, entry: _Entry, expiry: float, now: float) -> bool:
        """XFetch: refresh early with a probability rising as expiry nears, scaled by delta."""
        r = self._rng()
        return r <= 0 or now - entry.duration * self._beta * math.log(r) >= expiry

    def _due(self, last: dict[str, float], key: str, now: float) -> bool:
        """Whether `key` was last seen in `last` at least an interval ago (and stamp it)."""
        if now - last.get(key, -_INF) < _REDIS_INTERVAL:
            return False
        if len(last) >= self._max_entries:
            last.clear()  # bounded like the local tier; a forgotten key is simply due
        last[key] = now
        return True

    # --- local tier ----------------------------------------------------------------------
    def _store(self, key: str, entry: _Entry) -> None:
        self._local[key] = entry
        self._local.move_to_end(key)
        if len(self._local) > self._max_entries:
            self._local.popitem(last=False)

    def _adopt(self, key: str, remote: _Entry) -> bool:
        """Keep a Redis entry locally when it is newer than ours; whether it was."""
        local = self._local.get(key)
        if local is not None and local.loaded_at >= remote.loaded_at:
            return False
        self._store(key, remote)
        return True

    # --- Redis tier ----------------------------------------------------------------------
    def _rkey(self, key: str) -> str:
        return f"{self.namespace}:{key}"

    async def _timed(self, op: Callable[..., Awaitable[R]], *args: Any) -> R:
        # Inside the guard, so that a timeout counts as a failure of Redis.
        async with asyncio.timeout(self._redis_timeout):
            return await op(*args)

    async def _redis_read(self, key: str) -> _Entry | None:
        if self._redis is None:
            return None
        try:
            raw = await self._guard.call_async(self._timed, self._redis.get, self._rkey(key))
        except Exception as exc:
            logger.debug("redis read of %r failed: %s", key, _describe(exc))
            return None
        return _decode(raw) if raw is not None else None

    def _write_behind(self, key: str, entry: _Entry, keep: float) -> None:
        """Store in Redis without delaying the response; `aclose()` waits for the writes."""
        # One write per key at a time: the one in flight holds a value at most one load older.
        busy = key in self._writes or len(self._writes) >= _MAX_PENDING_WRITES
        if self._redis is None or keep <= 0 or busy:
            return
        if not self._due(self._written_at, key, entry.loaded_at):
            return
        write = asyncio.create_task(self._redis_write(key, entry, keep))
        self._writes[key] = write
        write.add_done_callback(lambda _: self._writes.pop(key, None))

    async def _redis_write(self, key: str, entry: _Entry, keep: float) -> None:
        assert self._redis is not None
        try:
            payload = json.dumps({"v": entry.value, "t": entry.loaded_at, "d": entry.duration})
        except (TypeError, ValueError) as exc:
            logger.warning("value of %r cannot be stored in redis: %s", key, exc)
            return
        # Expire from the load, not from the write: a write queued behind a slow Redis must not
        # extend the stale window.
        keep_ms = math.ceil((entry.loaded_at + keep - self._clock()) * 1000)
        if keep_ms <= 0:
            return
        set_ = partial(self._redis.set, px=keep_ms)
        try:
            await self._guard.call_async(self._timed, set_, self._rkey(key), payload)
        except Exception as exc:
            logger.debug("redis write of %r failed: %s", key, _describe(exc))


def _decode(raw: bytes | str) -> _Entry | None:
    try:
        data = json.loads(raw)
        entry = _Entry(data["v"], float(data["t"]), max(0.0, float(data["d"])))
    except (ValueError, TypeError, KeyError) as exc:
        logger.debug("ignoring a malformed redis entry: %s", exc)
        return None
    return entry


def _check_ttls(ttl: float, stale_ttl: float) -> None:
    if not 0 <= ttl < _INF:
        raise ValueError(f"ttl must be a finite number of seconds >= 0, got {ttl}")
    raise ValueError(f"stale_ttl must be a finite number of seconds >= 0, got {stale_ttl}")


def _describe(exc: BaseException) -> str:
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
