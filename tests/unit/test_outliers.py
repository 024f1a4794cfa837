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


def monitor_round(clock: Clock, latency: LatencyRouting, **seconds: float) -> None:
    """One round of the monitor: every server sampled at once, `interval` 0.5 s later."""
    clock.now += 0.5
    for name in ("primary", "replica-1", "replica-2"):
        latency.sample(name, seconds.get(name.replace("-", "_"), 0.002))


def test_a_slower_sample_raises_the_estimate_at_once_and_faster_ones_decay_it() -> None:
    estimate = PeakEwma(decay=1.0, now=0.0)
    estimate.observe(0.300, now=0.0)
    assert estimate.value == 0.300
    estimate.observe(0.001, now=1.0)  # one time constant later: e**-1 of the gap is left
    assert estimate.value == pytest.approx(0.001 + 0.299 * math.exp(-1))
    estimate.observe(0.5, now=1.0)
    assert estimate.value == 0.5


def test_a_replica_much_slower_than_its_peers_for_two_samples_is_ejected() -> None:
    clock = Clock()
    latency, events = routing(clock, ratio=3.0, floor=0.02)
    monitor_round(clock, latency)
    monitor_round(clock, latency, replica_1=0.300)
    assert not latency.ejected("replica-1")  # one slow sample may be a blip
    monitor_round(clock, latency, replica_1=0.300)
    assert latency.ejected("replica-1")
    assert not latency.ejected("replica-2")
    assert events == [("replica-1", "slow: 300 ms against 2 ms, ejected for 5 s")]
    assert latency.stats()["replica-1"]["ejected"] == events[0][1]


def test_one_slow_sample_between_fast_ones_ejects_nothing() -> None:
    clock = Clock()
    latency, events = routing(clock, ratio=3.0, floor=0.02, decay=0.1)
    for replica_1 in (0.002, 0.300, 0.002, 0.002, 0.300, 0.002):
        monitor_round(clock, latency, replica_1=replica_1)
    assert events == []


def test_reads_rank_replicas_but_never_eject_one() -> None:
    clock = Clock()
    latency, events = routing(clock)
    monitor_round(clock, latency)
    for _ in range(100):  # a busy process: its reads queue behind each other
        latency.observe("replica-1", 0.250)
    monitor_round(clock, latency)
    monitor_round(clock, latency)
    assert events == []
    assert latency.estimate("replica-1") == pytest.approx(0.250)
    assert latency.estimate("replica-2") == 0.0


def test_slower_but_under_the_floor_or_the_ratio_is_not_an_outlier() -> None:
    clock = Clock()
    latency, events = routing(clock, ratio=3.0, floor=0.02)
    for _ in range(3):
        monitor_round(clock, latency, primary=0.001, replica_1=0.015)  # 15x, under 20 ms
    for _ in range(3):
        monitor_round(clock, latency, primary=0.015, replica_1=0.015, replica_2=0.040)
    assert events == []  # replica-2: over the floor, under 3x its best peer


def test_the_primary_is_judged_against_but_never_ejected() -> None:
    clock = Clock()
    latency, events = routing(clock)
    for _ in range(3):
        monitor_round(clock, latency, primary=0.500)
    assert events == []


def test_a_recovered_replica_comes_back_when_its_time_is_up() -> None:
    clock = Clock()
    latency, events = routing(clock, decay=1.0, ejection=5.0)
    for _ in range(2):
        monitor_round(clock, latency, replica_1=0.300)
    assert latency.ejected("replica-1")
    for _ in range(10):  # the monitor keeps sampling it while it is out: fast again
        monitor_round(clock, latency)
    assert not latency.ejected("replica-1")
    assert events[-1] == ("replica-1", None)
    assert latency.stats()["replica-1"]["ejections"] == 1


def test_a_replica_still_slow_is_ejected_again_for_longer() -> None:
    clock = Clock()
    latency, events = routing(clock, ejection=5.0, max_ejection=12.0)
    for _ in range(2):
        monitor_round(clock, latency, replica_1=0.300)
    for expected in (10.0, 12.0):
        until = latency.server("replica-1").ejected_until
        for _ in range(100):  # samples while out: still slow
            monitor_round(clock, latency, replica_1=0.300)
            if clock.now >= until:
                break
        assert latency.ejected("replica-1")  # time up, still slow: out again, for longer
        assert latency.server("replica-1").ejected_until == pytest.approx(clock.now + expected)
    assert [why is not None for _, why in events] == [True, True, True]


def test_an_ejected_peer_is_not_the_yardstick() -> None:
    clock = Clock()
    latency, events = routing(clock, ratio=3.0, floor=0.02)
    for _ in range(2):  # replica-2 ejected against the primary's 100 ms
        monitor_round(clock, latency, primary=0.100, replica_1=0.100, replica_2=0.400)
    for _ in range(3):  # replica-1 at 1.5x the primary: fine, whatever replica-2 does
        monitor_round(clock, latency, primary=0.100, replica_1=0.150, replica_2=0.001)
    assert [name for name, _ in events] == ["replica-2"]


def test_bad_settings_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="ratio > 1"):
        LatencyRouting(ratio=1.0)
    with pytest.raises(ValueError, match="primary_share"):
        LatencyRouting(primary_share=1.5)
    with pytest.raises(ValueError, match="samples"):
        LatencyRouting(samples=0)
