"""FallbackCache without Redis: freshness, stale-if-error, fallbacks, single flight, XFetch."""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from resilience_async import CacheResult, CircuitOpenError, FallbackCache, FallbackUnavailableError
from tests.fakes import FakeClock

_namespaces = itertools.count()


class Loader:
    """A load function returning 1, 2, 3... or raising `error`; optionally takes `duration`."""

    def __init__(self, clock: FakeClock, *, duration: float = 0.0) -> None:
        self.clock = clock
        self.duration = duration
        self.calls = 0
        self.error: BaseException | None = None

    async def __call__(self) -> int:
        self.calls += 1
        self.clock.advance(self.duration)
        if self.error is not None:
            raise self.error
        return self.calls


class GatedLoader:
    """A load function that signals it started, then waits until released."""

    def __init__(self, value: str = "shared") -> None:
        self.value = value
        self.calls = 0
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.finished = False

    async def __call__(self) -> str:
        self.calls += 1
        self.started.set()
        await self.release.wait()
        self.finished = True
        return self.value


class RecordingRedis:
    """An in-memory stand-in for redis.asyncio.Redis that records every command."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}
        self.commands: list[str] = []

    async def get(self, name: str) -> str | None:
        self.commands.append("GET")
        return self.data.get(name)

    async def set(self, name: str, value: str, px: int) -> None:
        self.commands.append("SET")
        self.data[name] = value

    async def delete(self, name: str) -> None:
        self.commands.append("DEL")
        self.data.pop(name, None)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_cache(clock: FakeClock, rng: Callable[[], float] = lambda: 0.5, **options: Any):
    options.setdefault("redis", None)
    options.setdefault("namespace", f"unit-{next(_namespaces)}")
    return FallbackCache(clock=clock, rng=rng, **options)


def get(cache: FallbackCache, load: Callable[[], Awaitable[Any]], **options: Any):
    options.setdefault("ttl", 10.0)
    options.setdefault("stale_ttl", 60.0)
    return cache.get("key", load, **options)


def failing(exc: BaseException) -> Callable[[], Awaitable[Any]]:
    async def load() -> Any:
        raise exc

    return load


async def test_live_then_cache_within_ttl(clock: FakeClock) -> None:
    """The first get loads (live); within ttl the same value is served from cache with its age."""
    cache, load = make_cache(clock), Loader(clock)
    assert await get(cache, load) == CacheResult(1, "live", 0.0, None)
    clock.advance(9.5)
    assert await get(cache, load) == CacheResult(1, "cache", 9.5, None)
    assert load.calls == 1


async def test_reloads_after_ttl(clock: FakeClock) -> None:
    """Past ttl the value is loaded again and served live."""
    cache, load = make_cache(clock), Loader(clock)
    await get(cache, load)
    clock.advance(10.0)
    assert await get(cache, load) == CacheResult(2, "live", 0.0, None)


async def test_stale_served_when_load_fails_after_ttl(clock: FakeClock) -> None:
    """Past ttl but within the stale window, a failing load serves the old value as stale."""
    cache, load = make_cache(clock), Loader(clock)
    await get(cache, load)
    clock.advance(30.0)
    load.error = ConnectionError("upstream down")
    result = await get(cache, load, fallback=-1)
    assert result == CacheResult(1, "stale", 30.0, "ConnectionError: upstream down")


async def test_fallback_when_nothing_cached(clock: FakeClock) -> None:
    """A failing load with nothing cached serves the declared fallback with the error."""
    cache = make_cache(clock)
    result = await get(cache, failing(RuntimeError("boom")), fallback=[])
    assert result == CacheResult([], "fallback", 0.0, "RuntimeError: boom")


async def test_unavailable_without_fallback(clock: FakeClock) -> None:
    """A failing load with nothing cached and no fallback raises FallbackUnavailableError."""
    cache = make_cache(clock)
    cause = CircuitOpenError("tips", retry_after=3.0)
    with pytest.raises(FallbackUnavailableError) as raised:
        await get(cache, failing(cause))
    assert raised.value.key == "key"
    assert raised.value.__cause__ is cause


async def test_stale_window_expiry_gives_fallback(clock: FakeClock) -> None:
    """Past ttl + stale_ttl the old value is no longer served: the fallback is."""
    cache, load = make_cache(clock), Loader(clock)
    await get(cache, load)
    clock.advance(70.0)
    load.error = TimeoutError()
    result = await get(cache, load, fallback=0)
    assert result == CacheResult(0, "fallback", 0.0, "TimeoutError")


async def test_concurrent_misses_share_one_load(clock: FakeClock) -> None:
    """Twenty concurrent misses for one key make one load and all get its value."""
    cache, load = make_cache(clock), GatedLoader()
    gets = asyncio.gather(*(get(cache, load) for _ in range(20)))
    await load.started.wait()
    load.release.set()
    results = await gets
    assert load.calls == 1
    assert results == [CacheResult("shared", "live", 0.0, None)] * 20


async def test_cancelled_waiter_does_not_cancel_shared_load(clock: FakeClock) -> None:
    """A caller cancelled while waiting leaves the shared load running for the others."""
    cache, load = make_cache(clock), GatedLoader()
    first = asyncio.create_task(get(cache, load))
    second = asyncio.create_task(get(cache, load))
    await load.started.wait()
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    load.release.set()
    assert await second == CacheResult("shared", "live", 0.0, None)
    assert load.finished
    assert load.calls == 1


async def test_cancelled_error_inside_load_propagates(clock: FakeClock) -> None:
    """CancelledError raised by the load reaches the caller; it is never served as stale."""
    cache, load = make_cache(clock), Loader(clock)
    await get(cache, load)
    clock.advance(20.0)
    load.error = asyncio.CancelledError()
    with pytest.raises(asyncio.CancelledError):
        await get(cache, load, fallback=0)


async def test_local_tier_evicts_least_recently_used(clock: FakeClock) -> None:
    """Beyond local_max_entries the least recently used key is evicted."""
    cache, load = make_cache(clock, local_max_entries=2), Loader(clock)
    for key in ("a", "b", "a", "c"):  # "a" is used again, so "b" is the oldest
        await cache.get(key, load, ttl=10, stale_ttl=0)
    assert (await cache.get("a", load, ttl=10, stale_ttl=0)).source == "cache"
    assert (await cache.get("b", load, ttl=10, stale_ttl=0)).source == "live"
    assert load.calls == 4


async def test_ttl_zero_always_loads_and_keeps_stale_if_error(clock: FakeClock) -> None:
    """With ttl=0 every get loads live; the last value is served only when a load fails."""
    cache, load = make_cache(clock), Loader(clock)
    results = [await get(cache, load, ttl=0) for _ in range(3)]
    assert [(r.value, r.source) for r in results] == [(1, "live"), (2, "live"), (3, "live")]
    clock.advance(5.0)
    load.error = ConnectionError("refused")
    assert await get(cache, load, ttl=0) == CacheResult(3, "stale", 5.0, "ConnectionError: refused")


async def test_xfetch_refreshes_a_hot_key_early_in_the_background(clock: FakeClock) -> None:
    """A fresh hit near expiry, with the rng rigged low, is served and refreshed behind it."""
    cache, load = make_cache(clock, rng=lambda: 1e-6), Loader(clock, duration=1.0)
    await get(cache, load)
    clock.advance(5.0)  # -delta * log(1e-6) = 13.8 s of look-ahead reaches the 10 s expiry
    assert await get(cache, load) == CacheResult(1, "cache", 5.0, None)
    await cache.aclose()
    assert load.calls == 2
    assert await get(cache, load) == CacheResult(2, "cache", 0.0, None)
    await cache.aclose()


async def test_xfetch_does_not_refresh_when_rng_is_one(clock: FakeClock) -> None:
    """With rng() = 1.0 the look-ahead is zero: no early refresh before expiry."""
    cache, load = make_cache(clock, rng=lambda: 1.0), Loader(clock, duration=1.0)
    await get(cache, load)
    clock.advance(8.9)
    assert (await get(cache, load)).source == "cache"
    await cache.aclose()
    assert load.calls == 1


async def test_early_refresh_zero_never_refreshes(clock: FakeClock) -> None:
    """early_refresh=0 turns XFetch off, however low the rng."""
    cache = make_cache(clock, rng=lambda: 1e-300, early_refresh=0)
    load = Loader(clock, duration=1.0)
    await get(cache, load)
    clock.advance(8.9)
    assert (await get(cache, load)).source == "cache"
    await cache.aclose()
    assert load.calls == 1


async def test_failing_early_refresh_leaves_the_entry(clock: FakeClock) -> None:
    """An early refresh that fails leaves the cached entry as it was."""
    cache, load = make_cache(clock, rng=lambda: 1e-6), Loader(clock, duration=1.0)
    await get(cache, load)
    clock.advance(5.0)
    load.error = ConnectionError("refused")
    await get(cache, load)
    await cache.aclose()
    assert load.calls == 2
    assert await get(cache, load) == CacheResult(1, "cache", 6.0, None)  # the refresh took 1 s
    await cache.aclose()


async def test_fresh_local_hit_does_not_touch_redis(clock: FakeClock) -> None:
    """A fresh hit in the local tier sends no command to Redis."""
    redis = RecordingRedis()
    cache, load = make_cache(clock, redis=redis), Loader(clock)
    await get(cache, load)
    await cache.aclose()
    assert redis.commands == ["GET", "SET"]
    for _ in range(5):
        assert (await get(cache, load)).source == "cache"
    assert redis.commands == ["GET", "SET"]


async def test_results_are_counted_by_source(clock: FakeClock) -> None:
    """stats() counts each served result by its source, and what the cache holds."""
    cache, load = make_cache(clock), Loader(clock)
    await get(cache, load)
    await get(cache, load)
    clock.advance(20.0)
    load.error = ConnectionError()
    await get(cache, load)
    await cache.get("other", load, ttl=1, stale_ttl=1, fallback=0)

    assert cache.stats() == {
        "live": 1, "cache": 1, "stale": 1, "fallback": 1, "entries": 1, "loads": 0, "writes": 0,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"namespace": ""}, "namespace"),
        ({"redis_timeout": 0}, "redis_timeout"),
        ({"redis_cooldown": -1}, "redis_cooldown"),
        ({"local_max_entries": 0}, "local_max_entries"),
        ({"early_refresh": -0.5}, "early_refresh"),
        ({"early_refresh": math.nan}, "early_refresh"),
    ],
)
def test_constructor_rejects_bad_arguments(options: dict[str, Any], name: str) -> None:
    """Bad constructor arguments raise ValueError naming the argument."""
    with pytest.raises(ValueError, match=name):
        FallbackCache(redis=None, **options)


@pytest.mark.parametrize(
    ("ttls", "name"),
    [
        ({"ttl": -1, "stale_ttl": 0}, "ttl"),
        ({"ttl": math.inf, "stale_ttl": 0}, "ttl"),
        ({"ttl": 1, "stale_ttl": -1}, "stale_ttl"),
        ({"ttl": 1, "stale_ttl": math.nan}, "stale_ttl"),
    ],
)
async def test_get_rejects_bad_ttls(clock: FakeClock, ttls: dict[str, float], name: str) -> None:
    """A negative or non-finite ttl or stale_ttl raises ValueError naming it, before any load."""
    load = Loader(clock)
    with pytest.raises(ValueError, match=rf"^{name} must"):
        await make_cache(clock).get("key", load, **ttls)
    assert load.calls == 0


async def test_without_single_flight_each_miss_loads_on_its_own() -> None:
    """single_flight=False: concurrent misses each make their own load, in their own task."""
    cache = FallbackCache(redis=None, single_flight=False)
    all_in = asyncio.Event()
    release = asyncio.Event()
    calls = 0

    async def load() -> str:
        nonlocal calls
        calls += 1
        if calls == 5:
            all_in.set()
        await release.wait()
        return "v"

    waiting = [asyncio.create_task(cache.get("k", load, ttl=0, stale_ttl=60)) for _ in range(5)]
    async with asyncio.timeout(2):  # with single flight, one load would hold all five
        await all_in.wait()
    release.set()
    results = await asyncio.gather(*waiting)
    assert calls == 5
    assert {r.source for r in results} == {"live"}


# --- stale while revalidating, within a budget ------------------------------------------


async def stale_entry(cache: FallbackCache, clock: FakeClock) -> None:
    """Cache "old" for key k, then let its ttl (10 s) pass: stale, within its window."""
    await cache.get("k", lambda: _value("old"), ttl=10, stale_ttl=600)
    clock.advance(20)


async def _value(value: str) -> str:
    return value


@pytest.mark.parametrize("single_flight", [True, False])
async def test_a_slow_refresh_serves_stale_within_the_budget_and_lands_later(
    clock: FakeClock, single_flight: bool
) -> None:
    """A stale value at hand: the caller waits the budget, gets it, and the refresh goes on;
    when it lands, the next caller gets the new value from the cache."""
    cache = make_cache(clock, single_flight=single_flight)
    await stale_entry(cache, clock)
    refresh = GatedLoader("new")
    served = await cache.get("k", refresh, ttl=10, stale_ttl=600, stale_budget=0.01)
    assert (served.value, served.source, served.age) == ("old", "stale", 20)
    assert served.error == "refresh still running after 0.01 s"
    assert (refresh.calls, refresh.finished) == (1, False)
    refresh.release.set()
    await cache.aclose()  # waits for the refresh that outlived its caller
    after = await cache.get("k", refresh, ttl=10, stale_ttl=600, stale_budget=0.01)
    assert (after.value, after.source, refresh.calls) == ("new", "cache", 1)


async def test_callers_during_a_slow_refresh_share_it(clock: FakeClock) -> None:
    """Ten callers while one refresh hangs: ten stale answers, one load."""
    cache = make_cache(clock)
    await stale_entry(cache, clock)
    refresh = GatedLoader("new")
    results = await asyncio.gather(*(
        cache.get("k", refresh, ttl=10, stale_ttl=600, stale_budget=0.01) for _ in range(10)
    ))  # fmt: skip
    assert {(r.value, r.source) for r in results} == {("old", "stale")}
    assert refresh.calls == 1
    refresh.release.set()
    await cache.aclose()


async def test_a_refresh_within_the_budget_is_served_live(clock: FakeClock) -> None:
    cache = make_cache(clock)
    await stale_entry(cache, clock)
    served = await cache.get("k", lambda: _value("new"), ttl=10, stale_ttl=600, stale_budget=5)
    assert (served.value, served.source) == ("new", "live")


async def test_without_a_stale_value_the_budget_does_not_apply(clock: FakeClock) -> None:
    """Nothing cached (or past its stale window): the caller waits for the load."""
    cache = make_cache(clock)
    load = GatedLoader("first")
    pending = asyncio.create_task(cache.get("k", load, ttl=10, stale_ttl=60, stale_budget=0))
    await load.started.wait()
    assert not pending.done()
    load.release.set()
    assert (await pending).source == "live"
    clock.advance(100)  # past ttl + stale_ttl: nothing usable any more
    late = GatedLoader("second")
    pending = asyncio.create_task(cache.get("k", late, ttl=10, stale_ttl=60, stale_budget=0))
    await late.started.wait()
    assert not pending.done()
    late.release.set()
    assert (await pending).value == "second"


@pytest.mark.parametrize("budget", [-0.1, math.inf, math.nan])
async def test_a_budget_that_is_not_seconds_is_refused(clock: FakeClock, budget: float) -> None:
    with pytest.raises(ValueError, match="stale_budget"):
        await make_cache(clock).get("k", lambda: _value("v"), ttl=1, stale_ttl=1,
                                    stale_budget=budget)  # fmt: skip


async def test_after_a_failed_refresh_no_caller_waits_for_the_next(clock: FakeClock) -> None:
    """Once a load of the key has failed, callers get the stale value at once, however large
    the budget, while the next attempt runs; a success brings the budget back."""
    cache = make_cache(clock)
    await stale_entry(cache, clock)
    failing = Loader(clock)
    failing.error = ConnectionError("upstream gone")
    first = await cache.get("k", failing, ttl=10, stale_ttl=600, stale_budget=60)
    assert (first.source, failing.calls) == ("stale", 1)
    hanging = GatedLoader("new")
    served = await asyncio.wait_for(
        cache.get("k", hanging, ttl=10, stale_ttl=600, stale_budget=60), timeout=5
    )  # with the budget's wait this would take 60 s
    assert (served.value, served.source, hanging.calls) == ("old", "stale", 1)
    hanging.release.set()
    await cache.aclose()
    clock.advance(20)
    later = GatedLoader("newer")
    waiting = asyncio.create_task(cache.get("k", later, ttl=10, stale_ttl=600, stale_budget=60))
    await later.started.wait()
    assert not waiting.done()  # the last load succeeded: callers wait the budget again
    later.release.set()
    assert (await waiting).value == "newer"
