"""ResilientClient's hedged requests, against a real demo upstream process in `tail` mode.

`tail` delays one answer in `tail_every` (the first after the switch, then by count), so
which attempt is late is known: the first request's first attempt is, its hedge is not.
"""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry

from devstack.upstream import AsyncUpstreamControl
from resilience_async import (
    AiohttpTransport,
    CircuitBreaker,
    Hedge,
    ResilientClient,
    RetryBudget,
    RetryPolicy,
    is_server_failure,
)
from resilience_async.prometheus import Instruments, instrument
from tests.fix_upstream import until_idle
from tests.servers import Upstream

pytestmark = pytest.mark.integration

LATE_MS = 5_000  # a late answer: far past anything a test waits for, so its hedge must win
HEDGE_AFTER = 0.05  # seconds: the hedges' delay (min = max: no window to warm up)


def hedge(**options: object) -> Hedge[object]:
    settings: dict[str, object] = {"min_delay": HEDGE_AFTER, "max_delay": HEDGE_AFTER}
    return Hedge("tips", **(settings | options))  # type: ignore[arg-type]


def breaker() -> CircuitBreaker:
    return CircuitBreaker(name="tips-hedge-test", failure_threshold=3, failure_rate_threshold=None,
                          call_timeout=10.0, result_is_failure=is_server_failure,
                          default_hooks=False)  # fmt: skip


def client(
    own_upstream: Upstream, hedged: Hedge[object], guard: CircuitBreaker | None = None
) -> ResilientClient:
    return ResilientClient("tips", own_upstream.tips_url, timeout=10.0, hedge=hedged,
                           breaker=guard or breaker(), retry=RetryPolicy(attempts=1),
                           transport=AiohttpTransport(max_connections=8))  # fmt: skip


async def test_a_late_get_is_overtaken_by_its_hedge(
    own_upstream: Upstream, upstream_control: AsyncUpstreamControl
) -> None:
    """The first attempt is 5 s late; the hedge sent after 50 ms answers, and wins."""
    await upstream_control.set_mode("tail", delay_ms=0, tail_ms=LATE_MS, tail_every=2)
    hedged, guard = hedge(), breaker()
    tips = client(own_upstream, hedged, guard)
    async with tips:
        body = await asyncio.wait_for(tips.get_json("/tips"), LATE_MS / 1000 / 2)
        assert len(body["tips"]) > 3
        assert hedged.stats() | {"delay": None, "cleaning": None} == {
            "calls": 1, "hedged": 1, "refused": 0, "declined": 0, "won": 1,
            "delay": None, "cleaning": None,
        }  # fmt: skip
    # Both attempts counted; the loser, cancelled, as "abandoned" (the breaker ignores it).
    assert tips.stats()["attempts"] == {"200": 1, "abandoned": 1}
    calls = guard.stats()
    assert (calls["calls_success"], calls["calls_ignored"], calls["calls_failure"]) == (1, 1, 0)
    assert (await until_idle(upstream_control))["requests"] == 2


async def test_the_loser_leaks_no_connection_and_no_task(
    own_upstream: Upstream, upstream_control: AsyncUpstreamControl
) -> None:
    """Once the hedge is closed, the loser's slot is back, its task done, its connection
    closed (the upstream saw its client leave); the client still works after."""
    await upstream_control.set_mode("tail", delay_ms=0, tail_ms=LATE_MS, tail_every=2)
    hedged = hedge()
    transport = AiohttpTransport(max_connections=8)
    tips = ResilientClient("tips", own_upstream.tips_url, timeout=10.0, hedge=hedged,
                           retry=RetryPolicy(attempts=1), transport=transport)  # fmt: skip
    async with tips:
        before = asyncio.all_tasks()
        await tips.get_json("/tips")
        await hedged.aclose()
        assert asyncio.all_tasks() <= before
        assert hedged.stats()["cleaning"] == 0
        assert transport.stats() == {"in_use": 0, "waiting": 0}
        assert (await until_idle(upstream_control))["requests"] == 2
        await upstream_control.set_mode("normal")
        assert len((await tips.get_json("/tips"))["tips"]) > 3


async def test_a_5xx_is_an_answer_and_wins_the_race(
    own_upstream: Upstream, upstream_control: AsyncUpstreamControl
) -> None:
    """A fast 503 is the first answer: the race ends there (the retry loop judges it)."""
    await upstream_control.set_mode("error", status=503)
    hedged = hedge(min_delay=0.5, max_delay=0.5)
    async with client(own_upstream, hedged) as tips:
        response = await tips.request("GET", "/tips")
    assert response.status_code == 503
    assert hedged.stats()["hedged"] == 0


@pytest.mark.parametrize("method", ["POST", "PUT"])
async def test_a_write_is_never_hedged(
    own_upstream: Upstream, upstream_control: AsyncUpstreamControl, method: str
) -> None:
    """A late write waits for its one attempt: never two copies in flight, not even of an
    idempotent PUT (they could land on either side of another client's write)."""
    await upstream_control.set_mode("tail", delay_ms=0, tail_ms=200, tail_every=1)
    hedged = hedge()
    async with client(own_upstream, hedged) as tips:
        response = await tips.request(method, "/tips", json={})
    assert response.status_code == 405
    assert hedged.stats()["calls"] == 0
    assert tips.stats()["attempts"] == {"405": 1}
    assert (await upstream_control.stats())["requests"] == 1


async def test_the_budget_caps_hedges(
    own_upstream: Upstream, upstream_control: AsyncUpstreamControl
) -> None:
    """Every answer late, a budget of one hedge per four calls: 8 calls send 2 hedges."""
    await upstream_control.set_mode("tail", delay_ms=0, tail_ms=80, tail_every=1)
    hedged = hedge(min_delay=0.01, max_delay=0.01,
                   budget=RetryBudget(ratio=0.25, min_per_second=0.0))  # fmt: skip
    async with client(own_upstream, hedged) as tips:
        for _ in range(8):
            await tips.get_json("/tips")
    assert (hedged.stats()["hedged"], hedged.stats()["refused"]) == (2, 6)
    assert (await until_idle(upstream_control))["requests"] == 10


async def test_metrics_count_hedges_and_wins(
    own_upstream: Upstream, upstream_control: AsyncUpstreamControl
) -> None:
    """hedges_total counts the hedge sent, hedge_wins_total its win; the delay is exported."""
    registry = CollectorRegistry()
    hedged = hedge()
    instrument(hedged, instruments=Instruments(registry))
    await upstream_control.set_mode("tail", delay_ms=0, tail_ms=LATE_MS, tail_every=2)
    async with client(own_upstream, hedged) as tips:
        await tips.get_json("/tips")
    value = registry.get_sample_value
    assert value("hedges_total", {"dependency": "tips", "outcome": "sent"}) == 1
    assert value("hedges_total", {"dependency": "tips", "outcome": "refused"}) == 0
    assert value("hedge_wins_total", {"dependency": "tips"}) == 1
    assert value("hedge_delay_seconds", {"dependency": "tips"}) == HEDGE_AFTER
