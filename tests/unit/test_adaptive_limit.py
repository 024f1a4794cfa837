"""The adaptive in-flight limit: Gradient2's arithmetic, its windows, and its admission."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry

from resilience_async import AdaptiveLimit, Gradient2
from resilience_async.prometheus import Instruments, instrument


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Told:
    """A hook that remembers what it was told."""

    def __init__(self) -> None:
        self.rejections = 0
        self.limits: list[int] = []

    def record_rejection(self) -> None:
        self.rejections += 1

    def record_limit(self, limit: int) -> None:
        self.limits.append(limit)


def limited(clock: FakeClock, **gradient: int) -> AdaptiveLimit:
    parameters = {"initial_limit": 20, "min_limit": 10, "max_limit": 40, **gradient}
    return AdaptiveLimit("requests", gradient=Gradient2(**parameters), clock=clock)


def one_window(limit: AdaptiveLimit, clock: FakeClock, rtt: float, *, load: int = 0) -> int:
    """`load` requests (default: as many as the limit admits) each taking `rtt` s, in one
    window that ends with the last of them; the limit after it."""
    taken = 0
    while (not load or taken < load) and limit.try_enter():
        taken += 1
    for _ in range(taken - 1):
        limit.leave(clock.now - rtt)
    clock.now += 2.0  # past the longest window
    limit.leave(clock.now - rtt)
    return limit.limit


def test_the_limit_grows_by_queue_size_times_smoothing_while_latency_stays_low() -> None:
    """Gradient 1 (no queueing): each full window adds queue_size * smoothing = 0.8."""
    clock = FakeClock()
    limit = limited(clock)
    one_window(limit, clock, 0.010)
    assert limit.gradient.estimate == pytest.approx(20.8)
    limits = [one_window(limit, clock, 0.010) for _ in range(10)]
    assert limits == sorted(limits)
    assert limits[-1] == 28


def test_the_limit_stops_at_its_maximum() -> None:
    clock = FakeClock()
    limit = limited(clock)
    limits = [one_window(limit, clock, 0.010) for _ in range(100)]
    assert max(limits) == limits[-1] == 40


def test_the_limit_shrinks_when_latency_rises_and_stops_at_its_minimum() -> None:
    """Twice the long-term RTT is past the 1.5 tolerance: the gradient (floored at 0.5)
    shrinks the limit each window, down to min_limit and no lower."""
    clock = FakeClock()
    limit = limited(clock, initial_limit=40)
    for _ in range(10):
        one_window(limit, clock, 0.010)
    before = limit.limit
    after = one_window(limit, clock, 0.020)
    assert after < before
    limits = [one_window(limit, clock, 0.050) for _ in range(40)]
    assert limits == sorted(limits, reverse=True)
    assert limits[-1] == 10


def test_one_update_is_gradient2_s_formula() -> None:
    """long 10 ms, short 60 ms, tolerance 1.5: gradient 0.25, floored at 0.5; 30 * 0.5 + 4
    = 19, smoothed 30 * 0.8 + 19 * 0.2 = 27.8."""
    gradient = Gradient2(initial_limit=30, min_limit=1, max_limit=100)
    for _ in range(Gradient2.WARMUP):
        gradient.update(0.010, in_flight=0)  # the long-term RTT, learnt without load
    assert gradient.update(0.060, in_flight=30) == 27
    assert gradient.estimate == pytest.approx(27.8)
    assert gradient.short_rtt == 0.060


def test_a_limit_the_load_does_not_reach_does_not_move() -> None:
    """Fewer than half the limit in flight: latency says nothing about the limit."""
    clock = FakeClock()
    limit = limited(clock)
    for rtt in (0.010, 0.100, 0.001):
        assert one_window(limit, clock, rtt, load=9) == 20


def test_a_window_with_too_few_samples_or_too_fast_ones_changes_nothing() -> None:
    clock = FakeClock()
    limit = AdaptiveLimit("requests", gradient=Gradient2(initial_limit=20), clock=clock,
                          window_size=25)  # fmt: skip
    one_window(limit, clock, 0.010)  # 20 samples < 25
    assert limit.gradient.estimate == 20
    fast = AdaptiveLimit("requests", gradient=Gradient2(initial_limit=20), clock=clock)
    one_window(fast, clock, 0.00005)  # under min_rtt: no samples
    assert fast.gradient.estimate == 20


def test_stats_and_hooks_count_refusals_and_limit_changes() -> None:
    clock = FakeClock()
    told = Told()
    limit = AdaptiveLimit("requests", gradient=Gradient2(initial_limit=20, max_limit=40),
                          clock=clock, hooks=[told])  # fmt: skip
    for _ in range(20):
        assert limit.try_enter()

    refused = [asyncio.run(limit.enter()) for _ in range(3)]  # no queue: refused at once

    assert refused == [False, False, False]
    assert limit.stats()["rejected"] == told.rejections == 3
    for _ in range(19):
        limit.leave(clock.now - 0.010)
    clock.now += 2.0
    limit.leave(clock.now - 0.010)
    ten_ms = pytest.approx(0.010)
    assert limit.stats() == {"limit": 20, "in_flight": 0, "waiting": 0, "rejected": 3,
                             "short_rtt": ten_ms, "long_rtt": ten_ms}  # fmt: skip
    for _ in range(5):
        one_window(limit, clock, 0.010)
    assert told.limits == [21, 22, 23, 24]  # told once per change, 20.8 is still 20


async def test_a_lowered_limit_keeps_places_given_back_and_a_raised_one_admits_waiters() -> None:
    """Waiters are admitted newest first; none while in flight exceeds a lowered limit."""
    clock = FakeClock()
    limit = AdaptiveLimit("requests", gradient=Gradient2(initial_limit=2, min_limit=1),
                          max_queue=5, queue_timeout=5.0, fresh_only=False,
                          clock=clock)  # fmt: skip
    assert limit.try_enter()
    assert limit.try_enter()
    order: list[str] = []

    async def wait(name: str) -> None:
        if await limit.enter():
            order.append(name)

    waiters = [asyncio.create_task(wait(name)) for name in ("old", "new")]
    await asyncio.sleep(0)
    limit._set_limit(1)
    limit.leave(clock.now)  # 2 in flight over a limit of 1: the place is not handed on
    await asyncio.sleep(0)
    assert order == []
    assert limit.in_flight == 1
    limit._set_limit(3)  # two places free up at once
    await asyncio.gather(*waiters)
    assert order == ["new", "old"]
    assert limit.in_flight == 3


async def test_a_waiter_not_admitted_while_fresh_is_held_then_refused() -> None:
    """Past its fresh window (the long-term RTT, 1 ms at least) a waiter is no longer
    admitted, even when a place frees up: it is held to the end of its wait, then refused."""
    limit = AdaptiveLimit("requests", gradient=Gradient2(initial_limit=1, min_limit=1),
                          max_queue=5, queue_timeout=0.2)  # fmt: skip
    assert limit.try_enter()
    waiter = asyncio.create_task(limit.enter())
    await asyncio.sleep(0.02)  # well past 1 ms: the waiter is held, no longer queued
    assert limit.stats()["waiting"] == 0
    limit.leave(limit.clock())

    assert await waiter is False
    assert limit.stats()["rejected"] == 1
    assert limit.in_flight == 0


def test_bad_parameters_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="min_limit"):
        Gradient2(min_limit=50, max_limit=10)
    with pytest.raises(ValueError, match="tolerance"):
        Gradient2(tolerance=0.5)
    with pytest.raises(ValueError, match="smoothing"):
        Gradient2(smoothing=0.0)
    with pytest.raises(ValueError, match="window"):
        AdaptiveLimit("requests", min_window=2.0, max_window=1.0)


def test_prometheus_shows_the_limit_and_counts_refusals_as_a_bulkhead_s() -> None:
    registry = CollectorRegistry()
    clock = FakeClock()
    limit = AdaptiveLimit("requests", gradient=Gradient2(initial_limit=20, max_limit=40),
                          clock=clock)  # fmt: skip
    instrument(limit, instruments=Instruments(registry))
    assert registry.get_sample_value("inflight_limit", {"limit": "requests"}) == 20
    one_window(limit, clock, 0.010)
    one_window(limit, clock, 0.010)
    while limit.try_enter():
        pass
    assert not asyncio.run(limit.enter())

    assert registry.get_sample_value("inflight_limit", {"limit": "requests"}) == 21
    rejections = registry.get_sample_value("bulkhead_rejections_total", {"bulkhead": "requests"})
    assert rejections == 1
