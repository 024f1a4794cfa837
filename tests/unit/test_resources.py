"""The web process's composition root: built from settings, it opens nothing, and wires
Prometheus only when asked."""

from __future__ import annotations

import httpx

from project import builders
from project.resources import Resources
from resilience_async.prometheus import BreakerExport, CacheExport, DatabaseExport, UpstreamExport
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
