"""The fault proxy in front of the stack's real PostgreSQL, Redis and HTTP upstream.

The proxy runs as the stack runs it (`python -m devstack.faults.proxy` on a free port,
proxies created with POST /populate); the real clients the service uses (psycopg, redis-py,
httpx) go through it while toxics are added and removed with `devstack.faults.toxiproxy`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
import redis

from devstack.faults.toxiproxy import ToxiproxyClient
from devstack.stack import Stack, postgres
from devstack.stack.child import Child, tail
from devstack.stack.ports import free_port
from devstack.stack.waits import http_ok, wait_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"


@pytest.fixture(scope="module")
def toxiproxy(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, int]]:
    """The fault proxy with `primary`, `redis` and `upstream` proxies; their ports."""
    log = tmp_path_factory.mktemp("toxiproxy") / "toxiproxy.log"
    port = free_port()
    argv = [sys.executable, "-m", "devstack.faults.proxy", "--host", HOST, "--port", str(port)]
    child = Child("toxiproxy", argv, log, cwd=ROOT)
    child.start()
    try:
        wait_until(child, http_ok(f"http://{HOST}:{port}/version"), what="/version")
        routes = [
            {"name": name, "listen": f"{HOST}:{free_port()}",
             "upstream": f"{HOST}:{stack.services[name]['port']}"}
            for name in ("primary", "redis", "upstream")
        ]  # fmt: skip
        with ToxiproxyClient(f"http://{HOST}:{port}") as client:
            created = client.populate(routes)
        assert [p["listen"] for p in created] == [r["listen"] for r in routes]
        yield {"api": port} | {r["name"]: int(r["listen"].rsplit(":", 1)[1]) for r in routes}
    finally:
        child.stop(timeout=5)
    assert child.returncode() == 0, tail(log)


@pytest.fixture
def client(toxiproxy: dict[str, int]) -> Iterator[ToxiproxyClient]:
    with ToxiproxyClient(f"http://{HOST}:{toxiproxy['api']}") as toxiproxy_client:
        toxiproxy_client.reset()
        yield toxiproxy_client
        toxiproxy_client.reset()


def timed(action: object) -> float:
    assert callable(action)
    started = time.monotonic()
    action()
    return time.monotonic() - started


def test_redis_through_the_proxy(client: ToxiproxyClient, toxiproxy: dict[str, int]) -> None:
    """Redis answers through the proxy; latency slows it, reset_peer and a disabled proxy
    break it, and it answers again once they are gone."""
    url = f"redis://{HOST}:{toxiproxy['redis']}/0"
    with redis.Redis.from_url(url, socket_timeout=5, retry_on_timeout=False) as r:
        base = min(timed(r.ping) for _ in range(3))
        name = client.add_toxic("redis", "latency", attributes={"latency": 200})
        assert timed(r.ping) - base >= 0.2 - 0.005
        client.remove_toxic("redis", name)
        client.add_toxic("redis", "reset_peer", attributes={"timeout": 0})
    with redis.Redis.from_url(url, socket_timeout=5) as r, pytest.raises(redis.ConnectionError):
        r.ping()
    client.reset()
    client.set_enabled("redis", enabled=False)
    with redis.Redis.from_url(url, socket_timeout=5) as r, pytest.raises(redis.ConnectionError):
        r.ping()
    client.set_enabled("redis", enabled=True)
    with redis.Redis.from_url(url, socket_timeout=5) as r:
        assert r.ping()


def test_postgres_through_the_proxy(client: ToxiproxyClient, toxiproxy: dict[str, int]) -> None:
    """psycopg queries through the proxy; an upstream latency slows each query, a blackhole
    makes a connect time out, and removing it lets connections through again."""
    url = postgres.url(toxiproxy["primary"])
    with psycopg.connect(url, connect_timeout=5, autocommit=True) as conn:

        def query() -> None:
            assert conn.execute("SELECT 1").fetchone() == (1,)

        base = min(timed(query) for _ in range(3))
        client.add_toxic("primary", "latency", stream="upstream", attributes={"latency": 150})
        assert timed(query) - base >= 0.15 - 0.005
    client.reset()
    name = client.add_toxic("primary", "timeout", attributes={"timeout": 0})
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=1, sslmode="disable")
    client.remove_toxic("primary", name)
    with psycopg.connect(url, connect_timeout=5) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_http_upstream_through_the_proxy(
    client: ToxiproxyClient, toxiproxy: dict[str, int]
) -> None:
    """The demo upstream answers through the proxy; limit_data cuts its answers short."""
    url = f"http://{HOST}:{toxiproxy['upstream']}/health"
    with httpx.Client(timeout=5) as http:
        assert http.get(url).status_code == 200
        client.add_toxic("upstream", "limit_data", attributes={"bytes": 20})
    with httpx.Client(timeout=5) as http, pytest.raises(httpx.RemoteProtocolError):
        http.get(url)
