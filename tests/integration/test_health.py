"""Readiness and liveness of the real service against real dependencies, faults made for real."""

from __future__ import annotations

import concurrent.futures
import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
import redis

from devstack.stack import Stack
from devstack.upstream import UpstreamControl
from tests.helpers import kill, wait_for
from tests.servers import WebServer, run_web

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def web(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    with run_web(stack, tmp_path_factory.mktemp("web"), DATABASE_MAX_REPLICA_LAG="1") as server:
        yield server


def checks(response: httpx.Response) -> dict[str, dict]:
    """The report's entries by component name ("primary:responseTime" -> "primary")."""
    return {key.split(":")[0]: entries[0] for key, entries in response.json()["checks"].items()}


def ready_when(web: WebServer, predicate) -> httpx.Response:
    """Poll /health/ready until `predicate(response)` holds."""

    def probe() -> httpx.Response | None:
        response = web.get("/health/ready")
        return response if predicate(response) else None

    return wait_for(probe)


def test_ready_passes_and_lists_every_dependency(healthy_stack: Stack, web: WebServer) -> None:
    """With every dependency up, readiness is 200 pass with one entry per dependency."""
    response = ready_when(web, lambda r: r.json()["status"] == "pass")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/health+json"
    entries = checks(response)
    assert set(entries) == {"primary", "replica-1", "redis", "upstream", "broker", "outbox"}
    replica = entries["replica-1"]
    assert replica["observedUnit"] == "s"
    assert replica["observedValue"] >= 0
    assert replica["componentId"] == f"127.0.0.1:{healthy_stack.services['replica']['port']}"


def test_public_callers_see_statuses_only(healthy_stack: Stack, web: WebServer) -> None:
    """Without the health token (and DEBUG off) no host, error or value is disclosed."""
    ready_when(web, lambda r: r.json()["status"] == "pass")
    kill(healthy_stack.children["redis"])
    response = ready_when(web, lambda r: checks(r)["redis"]["status"] == "fail")
    public = web.get("/health/ready", token=False).json()
    assert set(public) == {"status", "checks"}
    assert all(set(entry) == {"status"} for entry in checks_of(public).values())
    assert "output" in checks(response)["redis"]


def checks_of(body: dict) -> dict[str, dict]:
    return {key.split(":")[0]: entries[0] for key, entries in body["checks"].items()}


def test_primary_down_warns_and_no_database_fails(healthy_stack: Stack, web: WebServer) -> None:
    """Primary killed: 200 warn naming it; replica killed too: 503 fail; live stays 200."""
    ready_when(web, lambda r: r.json()["status"] == "pass")
    kill(healthy_stack.children["primary"])
    degraded = ready_when(web, lambda r: r.json()["status"] == "warn")
    assert degraded.status_code == 200
    assert checks(degraded)["primary"]["status"] == "fail"
    assert checks(degraded)["replica-1"]["status"] == "pass"
    assert "primary" in degraded.json()["output"]
    assert web.get("/health/live").status_code == 200

    kill(healthy_stack.children["replica"])
    failed = ready_when(web, lambda r: r.status_code == 503)
    assert failed.json()["status"] == "fail"
    assert failed.json()["output"] == "no database is reachable"
    assert web.get("/health/live").status_code == 200


def test_redis_down_warns(healthy_stack: Stack, web: WebServer) -> None:
    """Redis killed: readiness stays 200 and warns naming redis."""
    kill(healthy_stack.children["redis"])
    response = ready_when(web, lambda r: r.json()["status"] == "warn")
    assert response.status_code == 200
    assert checks(response)["redis"]["status"] == "fail"


def test_paused_redis_costs_one_check_timeout(healthy_stack: Stack, web: WebServer) -> None:
    """Redis stopped with SIGSTOP: its check gives up at its timeout and readiness warns."""
    ready_when(web, lambda r: checks(r)["redis"]["status"] == "pass")
    kill(healthy_stack.children["redis"], signal.SIGSTOP)
    response = ready_when(web, lambda r: checks(r)["redis"]["status"] == "fail")
    assert response.status_code == 200
    assert "timeout" in checks(response)["redis"]["output"].lower()
    # The check's own measure: it gave up within HEALTH_CHECK_TIMEOUT (1 s), not later.
    assert checks(response)["redis"]["latencyMs"] <= 1000 * 1.2


def test_lagging_replica_warns(healthy_stack: Stack, web: WebServer) -> None:
    """A replica whose replay is paused falls behind the allowed lag and is reported warn."""
    replica_url = healthy_stack.services["replica"]["url"]
    with psycopg.connect(replica_url, autocommit=True) as replica:
        replica.execute("SELECT pg_wal_replay_pause()")
        try:
            with psycopg.connect(
                healthy_stack.services["primary"]["url"], autocommit=True
            ) as primary:
                primary.execute("CREATE TABLE IF NOT EXISTS lag_probe (at timestamptz)")
                primary.execute("INSERT INTO lag_probe VALUES (now())")
            response = ready_when(web, lambda r: checks(r)["replica-1"]["status"] == "warn")
        finally:
            replica.execute("SELECT pg_wal_replay_resume()")
    assert response.status_code == 200
    assert "replay lag" in checks(response)["replica-1"]["output"]
    assert checks(response)["replica-1"]["observedValue"] > 1


def test_failing_upstream_warns(healthy_stack: Stack, web: WebServer) -> None:
    """An upstream whose 5xx opened the breaker degrades readiness to warn, never to fail."""
    with UpstreamControl(healthy_stack.env["TIPS_UPSTREAM_CONTROL_URL"]) as control:
        control.set_mode("error", status=500)
        for _ in range(6):
            assert web.get("/api/tips").status_code == 200
    response = ready_when(web, lambda r: checks(r)["upstream"]["status"] == "warn")
    assert response.status_code == 200
    assert response.json()["status"] == "warn"


def test_probe_floods_share_one_round_of_checks(healthy_stack: Stack, tmp_path: Path) -> None:
    """Fifty concurrent readiness probes within the cache interval ping Redis once for the
    cache and once for the broker (the stack's broker is a database of the same Redis)."""
    redis_client = redis.Redis.from_url(healthy_stack.env["REDIS_URL"])

    def pings() -> int:
        return int(redis_client.info("commandstats").get("cmdstat_ping", {}).get("calls", 0))

    with (
        redis_client,
        run_web(healthy_stack, tmp_path, HEALTH_CACHE_TTL="30", BREAKER_SHARED="0") as server,
    ):
        before = pings()
        with concurrent.futures.ThreadPoolExecutor(max_workers=25) as pool:
            statuses = list(pool.map(lambda _: server.get("/health/ready").status_code, range(50)))
        after = pings()
    assert statuses == [200] * 50
    assert after - before == 2


def test_readiness_fails_at_once_on_sigterm_while_serving(
    healthy_stack: Stack, tmp_path: Path
) -> None:
    """After SIGTERM, readiness is 503 draining while live still answers, then the server exits."""
    with run_web(healthy_stack, tmp_path, SHUTDOWN_DRAIN_DELAY="3") as server:
        ready_when(server, lambda r: r.status_code == 200)
        kill(server.child, signal.SIGTERM)
        draining = server.get("/health/ready")
        assert draining.status_code == 503
        assert draining.json()["output"] == "instance is draining"
        assert server.get("/health/live").status_code == 200
        # uvicorn re-raises the signal it handled once it has shut down cleanly.
        assert server.child.popen.wait(timeout=10) == -signal.SIGTERM  # type: ignore[union-attr]


def test_an_outage_of_everything_is_told_plainly_and_logged_quietly(
    healthy_stack: Stack, tmp_path: Path
) -> None:
    """Every dependency dead under a readiness probe every 0.25 s and steady traffic: the
    answers are expected ones (503 with Retry-After, or tips from the fallback), no body
    names a host, a port or a driver's message, and the log has no ERROR line at all, and
    one warning per kind of failure, not one per request or per probe."""
    with run_web(healthy_stack, tmp_path) as server:
        ready_when(server, lambda r: r.status_code == 200)
        for name in ("primary", "replica", "redis", "upstream"):
            kill(healthy_stack.children[name])
        ready_when(server, lambda r: r.status_code == 503)
        answers: list[httpx.Response] = []
        for _ in range(16):  # 4 s of probes, with a write, two reads and tips between each
            answers.append(server.get("/health/ready", token=False))
            answers.append(server.client.post("/api/orders", json={"item": "x", "quantity": 1}))
            answers.append(server.client.get("/api/orders/1"))
            answers.append(server.client.get("/api/orders"))
            answers.append(server.client.get("/api/tips"))
            time.sleep(0.25)
    ports = [str(service["port"]) for service in healthy_stack.services.values()
             if "port" in service]  # fmt: skip
    for answer in answers:
        assert answer.status_code in (200, 503), answer.text
        assert "127.0.0.1" not in answer.text
        assert "connection" not in answer.text.lower()
        assert not any(port in answer.text for port in ports), answer.text
        if answer.status_code == 503 and answer.url.path.startswith("/api/"):
            assert int(answer.headers["Retry-After"]) >= 1
            assert answer.headers["Content-Type"] == "application/problem+json"
    assert {a.json()["source"] for a in answers if a.url.path == "/api/tips"} == {"fallback"}
    lines = [json.loads(line) for log in tmp_path.glob("web-*.log")
             for line in log.read_text().splitlines() if line.startswith("{")]  # fmt: skip
    assert [line for line in lines if line["level"] in ("error", "critical")] == []
    answered = [line for line in lines if line["message"].startswith("answered 503")]
    assert 1 <= len(answered) <= 6, answered  # per kind of failure, not per request


def test_migrations_reach_the_replica(healthy_stack: Stack) -> None:
    """The schema migrated on the primary is present on the streaming replica."""
    with psycopg.connect(healthy_stack.services["replica"]["url"]) as replica:
        tables = replica.execute(
            "SELECT to_regclass('orders'), to_regclass('reports'), to_regclass('outbox')"
        ).fetchone()
    assert tables == ("orders", "reports", "outbox")
