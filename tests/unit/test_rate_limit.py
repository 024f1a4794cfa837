"""The rate limiter's buckets in process: refill arithmetic on a clock the test moves, costs,
bursts, keys, policies, bounded memory, stats and hooks. Redis is tested for real in
tests/integration/test_rate_limit_redis.py.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from resilience_async import RateLimitDecision, RateLimiter, RateLimitPolicy
from tests.fakes import FakeClock

PER_MINUTE = RateLimitPolicy("default", limit=6, window=60)  # a token every 10 s


class Recorder:
    """A hook keeping what it was told."""

    def __init__(self) -> None:
        self.decisions: list[tuple[str, bool, bool]] = []
        self.fallbacks: list[bool] = []

    def record_decision(self, policy: str, allowed: bool, shared: bool) -> None:
        self.decisions.append((policy, allowed, shared))

    def record_fallback(self, active: bool) -> None:
        self.fallbacks.append(active)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def limiter(clock: FakeClock) -> RateLimiter:
    return RateLimiter(redis=None, clock=clock)


async def allowed(limiter: RateLimiter, key: str, policy: RateLimitPolicy, calls: int) -> int:
    return sum([(await limiter.acquire(key, policy)).allowed for _ in range(calls)])


def decision(**fields: Any) -> RateLimitDecision:
    base: dict[str, Any] = {
        "allowed": True, "remaining": 0, "retry_after": 0.0, "reset_after": 0.0,
        "policy": PER_MINUTE, "shared": False,
    }  # fmt: skip
    return RateLimitDecision(**(base | fields))


async def test_a_full_bucket_allows_its_capacity_then_refuses(limiter: RateLimiter) -> None:
    """Six calls pass, each telling what is left; the seventh waits one interval."""
    decisions = [await limiter.acquire("a", PER_MINUTE) for _ in range(7)]
    assert [d.allowed for d in decisions] == [True] * 6 + [False]
    assert [d.remaining for d in decisions] == [5, 4, 3, 2, 1, 0, 0]
    assert [d.reset_after for d in decisions] == [10, 20, 30, 40, 50, 60, 60]
    assert [d.retry_after for d in decisions] == [0, 0, 0, 0, 0, 10, 10]
    assert {(d.policy, d.shared) for d in decisions} == {(PER_MINUTE, False)}


async def test_tokens_return_one_interval_at_a_time(limiter: RateLimiter, clock: FakeClock) -> None:
    """Emptied, the bucket gives a token back every 10 s, and is full 60 s later."""
    await allowed(limiter, "a", PER_MINUTE, 6)
    clock.advance(9.5)
    refused = await limiter.acquire("a", PER_MINUTE)
    assert (refused.allowed, refused.retry_after) == (False, pytest.approx(0.5))
    clock.advance(0.5)
    assert (await limiter.acquire("a", PER_MINUTE)).allowed
    assert not (await limiter.acquire("a", PER_MINUTE)).allowed
    clock.advance(25)  # two and a half tokens back
    assert await allowed(limiter, "a", PER_MINUTE, 3) == 2
    clock.advance(3600)
    assert await allowed(limiter, "a", PER_MINUTE, 10) == 6  # never more than full


async def test_a_refused_call_takes_nothing(limiter: RateLimiter, clock: FakeClock) -> None:
    """Callers hammering an empty bucket don't push their own next token further away."""
    await allowed(limiter, "a", PER_MINUTE, 6)
    for _ in range(100):
        await limiter.acquire("a", PER_MINUTE)
    clock.advance(10)
    assert (await limiter.acquire("a", PER_MINUTE)).allowed


async def test_burst_is_the_capacity_and_limit_the_rate(
    limiter: RateLimiter, clock: FakeClock
) -> None:
    """Ten at once after a rest, then one a second."""
    policy = RateLimitPolicy("burst", limit=1, window=1, burst=10)
    first = await limiter.acquire("a", policy)
    assert (first.remaining, first.reset_after) == (9, 1)
    assert await allowed(limiter, "a", policy, 20) == 9
    for _ in range(5):
        clock.advance(1)
        assert await allowed(limiter, "a", policy, 3) == 1


async def test_a_call_may_cost_several_tokens(limiter: RateLimiter, clock: FakeClock) -> None:
    """Cost 4 of 6: one such call passes; the next waits until 4 tokens are back."""
    first = await limiter.acquire("a", PER_MINUTE, cost=4)
    assert (first.allowed, first.remaining, first.retry_after) == (True, 2, 20)
    second = await limiter.acquire("a", PER_MINUTE, cost=4)
    assert (second.allowed, second.remaining, second.retry_after) == (False, 2, 20)
    assert (await limiter.acquire("a", PER_MINUTE, cost=2)).allowed
    clock.advance(40)
    assert (await limiter.acquire("a", PER_MINUTE, cost=4)).allowed


@pytest.mark.parametrize("cost", [0, -1, 7, 1.5, True])
async def test_a_cost_outside_the_bucket_is_refused(limiter: RateLimiter, cost: Any) -> None:
    with pytest.raises(ValueError, match=r"cost must be an integer in \[1, 6\]"):
        await limiter.acquire("a", PER_MINUTE, cost=cost)


async def test_keys_and_policies_have_buckets_of_their_own(limiter: RateLimiter) -> None:
    """One client's emptied bucket leaves another's, and another policy's, untouched."""
    per_address = RateLimitPolicy("addr", limit=6, window=60)
    assert await allowed(limiter, "key:1", PER_MINUTE, 10) == 6
    assert await allowed(limiter, "key:2", PER_MINUTE, 10) == 6
    assert await allowed(limiter, "key:1", per_address, 10) == 6


async def test_a_policy_shortened_under_the_same_name_caps_the_wait(
    limiter: RateLimiter,
) -> None:
    """An empty bucket of a 1-per-100 s policy, read under 1 per 10 s, waits 10 s, not 100."""
    await limiter.acquire("a", RateLimitPolicy("p", limit=1, window=100))
    refused = await limiter.acquire("a", RateLimitPolicy("p", limit=1, window=10))
    assert (refused.allowed, refused.retry_after, refused.reset_after) == (False, 10, 10)


async def test_rounding_never_refuses_the_last_token(limiter: RateLimiter) -> None:
    """Seven intervals of 60/7 s added one by one to a clock in seconds overshoot 60 s."""
    policy = RateLimitPolicy("sevenths", limit=7, window=60)
    full_at = start = 1_000_000.0
    for _ in range(7):
        full_at += 60 / 7
    assert full_at - start > 60  # the error that counting in microseconds avoids
    assert await allowed(limiter, "a", policy, 8) == 7
    assert policy.interval == 8.571429  # rounded to the microsecond


async def test_memory_is_bounded_by_forgetting_the_least_recently_used(clock: FakeClock) -> None:
    """Past local_max_keys, the oldest bucket is forgotten, which is to say full again."""
    limiter = RateLimiter(redis=None, clock=clock, local_max_keys=2)
    for key in ("a", "b"):
        await allowed(limiter, key, PER_MINUTE, 6)
    await limiter.acquire("a", PER_MINUTE)  # a is now the most recently used
    await limiter.acquire("c", PER_MINUTE)  # b goes
    assert limiter.stats()["buckets"] == 2
    assert (await limiter.acquire("b", PER_MINUTE)).remaining == 5  # forgotten: full
    assert (await limiter.acquire("c", PER_MINUTE)).remaining == 4  # kept


async def test_stats_and_hooks_count_each_decision_by_policy(limiter: RateLimiter) -> None:
    """Allowed and refused by policy, all decided in process; hooks hear the same."""
    hook = Recorder()
    limiter.add_hook(hook)
    other = RateLimitPolicy("other", limit=1, window=1)
    await allowed(limiter, "a", PER_MINUTE, 8)
    await allowed(limiter, "a", other, 2)
    assert limiter.stats() == {
        "allowed": {"default": 6, "other": 1},
        "refused": {"default": 2, "other": 1},
        "local": 10,
        "fallback": 0,
        "buckets": 2,
    }
    assert hook.decisions == [
        *[("default", True, False)] * 6,
        *[("default", False, False)] * 2,
        ("other", True, False),
        ("other", False, False),
    ]
    assert hook.fallbacks == []
    assert limiter.hooks == (hook,)
    assert not limiter.fallback


async def test_the_lifecycle_is_async_with_and_aclose() -> None:
    async with RateLimiter(redis=None) as limiter:
        assert (await limiter.acquire("a", PER_MINUTE)).allowed
    await limiter.aclose()  # twice is harmless


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": ""}, "policy name must be"),
        ({"name": "a b"}, "policy name must be"),
        ({"name": 'x"'}, "policy name must be"),
        ({"name": "x" * 65}, "policy name must be"),
        ({"limit": 0}, "limit must be an integer >= 1"),
        ({"limit": 2.5}, "limit must be an integer >= 1"),
        ({"limit": True}, "limit must be an integer >= 1"),
        ({"window": 0}, "window must be a finite number of seconds > 0"),
        ({"window": math.inf}, "window must be a finite number of seconds > 0"),
        ({"window": math.nan}, "window must be a finite number of seconds > 0"),
        ({"burst": 0}, "burst must be an integer >= 1"),
        ({"limit": 10**7, "window": 1}, "at most one per microsecond"),
        ({"limit": 1, "window": 10**10}, "must fill within"),
    ],
)
def test_a_malformed_policy_is_refused_naming_its_field(
    fields: dict[str, Any], message: str
) -> None:
    arguments: dict[str, Any] = {"name": "p", "limit": 10, "window": 60} | fields
    with pytest.raises(ValueError, match=message):
        RateLimitPolicy(**arguments)


def test_a_policy_derives_its_bucket() -> None:
    policy = RateLimitPolicy("p", limit=100, window=60, burst=20)
    assert (policy.capacity, policy.interval, policy.tolerance) == (20, 0.6, pytest.approx(12))
    assert RateLimitPolicy("p", limit=100, window=60).capacity == 100


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"namespace": ""}, "namespace must not be empty"),
        ({"redis_timeout": 0}, "redis_timeout must be > 0 seconds"),
        ({"redis_cooldown": math.inf}, "redis_cooldown must be > 0 seconds"),
        ({"local_max_keys": 0}, "local_max_keys must be >= 1"),
        ({"redis_max_in_flight": 0}, "redis_max_in_flight must be >= 1"),
    ],
)
def test_a_malformed_limiter_is_refused_naming_its_argument(
    arguments: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        RateLimiter(redis=None, **arguments)


def test_a_decision_is_plain_data() -> None:
    assert decision(remaining=3) == decision(remaining=3)
    with pytest.raises(AttributeError):
        decision().allowed = False  # type: ignore[misc]
