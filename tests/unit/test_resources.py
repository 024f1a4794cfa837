"""The web process's composition root: built from settings, it opens nothing, and wires
Prometheus only when asked."""

from __future__ import annotations

import httpx

from project import builders
from project.resources import Resources
from resilience_async.prometheus import (
    BreakerExport,
    CacheExport,
    DatabaseExport,
    HedgeExport,
    UpstreamExport,
)
from tests.helpers import project_settings


def test_building_the_root_opens_nothing() -> None:
    """Pools are built closed and the monitor is not running: importing the URLconf (manage.py
    check, say) costs no connection."""
    resources = Resources(project_settings())
    assert resources.database.primary.closed
    assert all(pool.closed for pool in resources.database.replicas)
    assert resources.lifecycle.phase.value == "starting"


def test_metrics_enabled_gives_every_primitive_its_prometheus_hook() -> None:
    resources = Resources(project_settings(METRICS_ENABLED=True))
    exports = {type(hook) for hook in resources.tips_breaker.hooks}
    assert BreakerExport in exports
    assert any(isinstance(h, UpstreamExport) for h in resources.tips_client.hooks)
    assert any(isinstance(h, CacheExport) for h in resources.tips_cache.hooks)
    assert any(isinstance(h, DatabaseExport) for h in resources.database.hooks)
    for hedge in (resources.tips_hedge, resources.database.hedge):
        assert hedge is not None
        assert any(isinstance(h, HedgeExport) for h in hedge.hooks)


def test_reads_follow_latency_and_are_hedged_unless_turned_off() -> None:
    """DATABASE_LATENCY_ROUTING and DATABASE_HEDGE (both on by default) build the database's
    latency routing and read hedge from settings."""
    on = Resources(project_settings(DATABASE_OUTLIER_RATIO=4.0, DATABASE_HEDGE_MAX_DELAY=0.2))
    assert on.database.latency is not None
    assert on.database.latency.ratio == 4.0
    assert on.database.hedge is not None
    assert on.database.hedge.max_delay == 0.2
    off = Resources(project_settings(DATABASE_LATENCY_ROUTING=False, DATABASE_HEDGE=False))
    assert (off.database.latency, off.database.hedge) == (None, None)


def test_the_tips_client_is_hedged_unless_upstream_hedge_is_off() -> None:
    """UPSTREAM_HEDGE (on by default) gives the web's tips client its hedge, from settings."""
    hedged = Resources(
        project_settings(UPSTREAM_HEDGE_PERCENTILE=0.9, UPSTREAM_HEDGE_MAX_DELAY=0.3)
    )
    assert hedged.tips_hedge is not None
    assert hedged.tips_client.hedge is hedged.tips_hedge
    assert (hedged.tips_hedge.latency.percentile, hedged.tips_hedge.delay) == (0.9, 0.3)
    unhedged = Resources(project_settings(UPSTREAM_HEDGE=False))
    assert (unhedged.tips_hedge, unhedged.tips_client.hedge) == (None, None)


def test_metrics_disabled_installs_no_hook() -> None:
    resources = Resources(project_settings(METRICS_ENABLED=False))
    assert {type(hook).__name__ for hook in resources.tips_breaker.hooks} == {"LoggingHook"}
    assert resources.tips_client.hooks == ()
    assert resources.tips_cache.hooks == ()
    assert resources.database.hooks == ()


async def test_the_tips_client_sends_through_the_transport_it_is_given() -> None:
    """`bench transport` measures the service's own client on another transport."""
    settings = project_settings()
    answered = httpx.MockTransport(
        lambda request: httpx.Response(200, json={"path": request.url.path})
    )
    client = builders.tips_client(settings, breaker=builders.tips_breaker(settings),
                                  transport=answered)  # fmt: skip

    assert await client.get_json("/tips") == {"path": "/tips"}
    await client.aclose()
