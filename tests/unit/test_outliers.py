"""`LatencyRouting`: peak-EWMA estimates, slow replicas ejected, probed back, and kept out."""

from __future__ import annotations

import math

import pytest

from resilience_async._outliers import LatencyRouting, PeakEwma


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def routing(clock: Clock, **options: float) -> tuple[LatencyRouting, list[tuple[str, str | None]]]:
    events: list[tuple[str, str | None]] = []
    latency = LatencyRouting(clock=clock, on_eject=lambda name, why: events.append((name, why)),
                             **options)  # fmt: skip
    latency.track("primary", ["replica-1", "replica-2"])
    return latency, events


def test_a_slower_sample_raises_the_estimate_at_once_and_faster_ones_decay_it() -> None:
    estimate = PeakEwma(decay=1.0, now=0.0)
    estimate.observe(0.300, now=0.0)
    assert estimate.value == 0.300
    estimate.observe(0.001, now=1.0)  # one time constant later: e**-1 of the gap is left
    assert estimate.value == pytest.approx(0.001 + 0.299 * math.exp(-1))
    estimate.observe(0.5, now=1.0)
    assert estimate.value == 0.5


def test_a_replica_much_slower_than_its_peers_is_ejected_on_its_first_slow_answer() -> None:
    clock = Clock()
    latency, events = routing(clock, ratio=3.0, floor=0.02)
    for name in ("primary", "replica-1", "replica-2"):
        latency.observe(name, 0.002)
    latency.observe("replica-1", 0.300)
    assert latency.ejected("replica-1")
    assert not latency.ejected("replica-2")
    assert events == [("replica-1", "slow: 300 ms against 2 ms, ejected for 5 s")]
    assert latency.stats()["replica-1"]["ejected"] == events[0][1]


def test_slower_but_under_the_floor_or_the_ratio_is_not_an_outlier() -> None:
    clock = Clock()
    latency, events = routing(clock, ratio=3.0, floor=0.02)
    latency.observe("primary", 0.001)
    latency.observe("replica-1", 0.015)  # 15x, but under 20 ms
    latency.observe("replica-1", 0.012)
    assert events == []
    latency.observe("primary", 0.015)
    latency.observe("replica-2", 0.040)  # over the floor, under 3x its best peer (15 ms)
    assert not latency.ejected("replica-2")


def test_the_primary_is_judged_against_but_never_ejected() -> None:
    clock = Clock()
    latency, events = routing(clock)
    latency.observe("replica-1", 0.001)
    latency.observe("primary", 0.500)
    assert events == []


def test_a_recovered_replica_comes_back_when_its_time_is_up() -> None:
    clock = Clock()
    latency, events = routing(clock, decay=1.0, ejection=5.0)
    latency.observe("primary", 0.002)
    latency.observe("replica-1", 0.300)
    assert latency.ejected("replica-1")
    for _ in range(10):  # the monitor keeps sampling it while it is out: fast again
        clock.now += 0.5
        latency.observe("replica-1", 0.002)
        latency.observe("primary", 0.002)
    assert not latency.ejected("replica-1")
    assert events[-1] == ("replica-1", None)
    assert latency.stats()["replica-1"]["ejections"] == 1


def test_a_replica_still_slow_is_ejected_again_for_longer() -> None:
    clock = Clock()
    latency, events = routing(clock, ejection=5.0, max_ejection=12.0)
    latency.observe("primary", 0.002)
    latency.observe("replica-1", 0.300)
    for expected in (10.0, 12.0):
        clock.now += 0.5
        latency.observe("replica-1", 0.300)  # a sample while out changes nothing
        assert latency.ejected("replica-1")
        clock.now = latency.server("replica-1").ejected_until
        latency.observe("primary", 0.002)
        assert latency.ejected("replica-1")  # time up, still slow: out again, for longer
        assert latency.server("replica-1").ejected_until == pytest.approx(clock.now + expected)
    assert [why is not None for _, why in events] == [True, True, True]


def test_an_ejected_peer_is_not_the_yardstick() -> None:
    clock = Clock()
    latency, events = routing(clock, ratio=3.0, floor=0.02)
    latency.observe("primary", 0.100)
    latency.observe("replica-2", 0.001)
    latency.observe("replica-2", 0.400)  # ejected against the primary's 100 ms
    latency.observe("replica-1", 0.150)  # 1.5x the primary: fine, whatever replica-2 was
    assert [name for name, _ in events] == ["replica-2"]


def test_bad_settings_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="ratio > 1"):
        LatencyRouting(ratio=1.0)
    with pytest.raises(ValueError, match="primary_share"):
        LatencyRouting(primary_share=1.5)
