"""How the stack routes the app through its fault proxy: one route per dependency it
started, the app's settings rewritten to the proxies, the broker apart from the cache."""

from __future__ import annotations

from devstack.stack.fault_proxy import Route, rewrite, routes_for

SERVICES = {
    "primary": {"port": 15001},
    "replica": {"port": 15002},
    "redis": {"port": 15003},
    "upstream": {"port": 15004, "control_port": 15005},
    "web": {"port": 8000},
}


def test_one_route_per_dependency_and_the_broker_its_own_even_on_the_same_redis() -> None:
    routes = routes_for(SERVICES, broker_service="redis")
    assert [(r.name, r.upstream_port) for r in routes] == [
        ("primary", 15001), ("replica", 15002), ("redis", 15003), ("upstream", 15004),
        ("broker", 15003),
    ]  # fmt: skip
    assert len({r.listen_port for r in routes}) == len(routes)


def test_the_apps_settings_name_the_proxies() -> None:
    routes = [Route("primary", 15001, 16001), Route("replica", 15002, 16002),
              Route("redis", 15003, 16003), Route("upstream", 15004, 16004),
              Route("broker", 15003, 16005)]  # fmt: skip
    env = {
        "DATABASE_URL": "postgresql://postgres@127.0.0.1:15001,127.0.0.1:15002/app"
        "?target_session_attrs=read-write",
        "DATABASE_REPLICA_URLS": "postgresql://postgres@127.0.0.1:15002/app",
        "REDIS_URL": "redis://127.0.0.1:15003/0",
        "BROKER_URL": "redis://127.0.0.1:15003/1",
        "TIPS_UPSTREAM_URL": "http://127.0.0.1:15004",
        "TIPS_UPSTREAM_CONTROL_URL": "http://127.0.0.1:15005",
    }
    assert rewrite(env, routes) == {
        "DATABASE_URL": "postgresql://postgres@127.0.0.1:16001,127.0.0.1:16002/app"
        "?target_session_attrs=read-write",
        "DATABASE_REPLICA_URLS": "postgresql://postgres@127.0.0.1:16002/app",
        "REDIS_URL": "redis://127.0.0.1:16003/0",
        "BROKER_URL": "redis://127.0.0.1:16005/1",
        "TIPS_UPSTREAM_URL": "http://127.0.0.1:16004",
        "TIPS_UPSTREAM_CONTROL_URL": "http://127.0.0.1:15005",  # faults are not proxied
    }
