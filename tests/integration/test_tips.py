"""GET /api/tips on the real service: upstream and Redis faults made for real, no 5xx ever."""

from __future__ import annotations

import concurrent.futures
import itertools
import json
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devstack.stack import Stack
from devstack.upstream import UpstreamControl
from tests.helpers import kill, memory_kib, metric, reset_peak_memory, wait_for
from tests.servers import WebServer, run_web

pytestmark = pytest.mark.integration

_redis_dbs = itertools.count(2)  # each server its own Redis database: nothing cached before
HUGE = 512 * 1024 * 1024


def fresh_redis(stack: Stack) -> str:
    return stack.env["REDIS_URL"].rsplit("/", 1)[0] + f"/{next(_redis_dbs)}"


@pytest.fixture
def upstream(healthy_stack: Stack) -> Iterator[UpstreamControl]:
    with UpstreamControl(healthy_stack.env["TIPS_UPSTREAM_CONTROL_URL"]) as control:
        yield control
        control.set_mode("normal")


@pytest.fixture
def web(healthy_stack: Stack, tmp_path: Path) -> Iterator[WebServer]:
    """A server that always asks the upstream (CACHE_TTL=0): the cache only saves the day.

    Not hedged: these tests count the upstream's calls exactly, and whether a late call's
    hedge goes out before its timeout is a race (tests/integration/test_http_hedge.py and
    the upstream-jitter scenario test hedging)."""
    with run_web(
        healthy_stack, tmp_path, REDIS_URL=fresh_redis(healthy_stack), CACHE_TTL="0",
        UPSTREAM_TIMEOUT="0.5", BREAKER_RESET_TIMEOUT="30", BREAKER_SHARED="0",
        UPSTREAM_HEDGE="0",
    ) as server:  # fmt: skip
        yield server


def tips(web: WebServer) -> httpx.Response:
    response = web.get("/api/tips")
    assert response.status_code == 200, response.text
    return response


def test_tips_are_live_then_cached_within_the_ttl(healthy_stack: Stack, tmp_path: Path) -> None:
    """The first answer is live; within CACHE_TTL the next one comes from the cache."""
    with run_web(healthy_stack, tmp_path, REDIS_URL=fresh_redis(healthy_stack),
                 CACHE_TTL="60") as server:  # fmt: skip
        first, second = tips(server).json(), tips(server)
    assert first["source"] == "live"
    assert len(first["tips"]) > 3
    assert second.json()["source"] == "cache"
    assert int(second.headers["Age"]) >= 0


def test_upstream_errors_serve_stale_with_its_age(
    web: WebServer, upstream: UpstreamControl
) -> None:
    """Upstream 5xx after a good answer: the last good tips, marked stale, with their age."""
    live = tips(web).json()
    upstream.set_mode("error", status=503)
    stale = tips(web)
    assert stale.json()["source"] == "stale"
    assert stale.json()["tips"] == live["tips"]
    assert "Age" in stale.headers


def test_nothing_cached_and_upstream_down_serves_the_fallback(
    web: WebServer, upstream: UpstreamControl
) -> None:
    """With no good answer ever seen and the upstream refusing, the built-in tips are served."""
    upstream.set_mode("refuse")
    body = tips(web).json()
    assert body["source"] == "fallback"
    assert body["tips"]


def test_open_breaker_fails_fast_and_shows_in_readiness(
    web: WebServer, upstream: UpstreamControl
) -> None:
    """After repeated failures the breaker opens: answers stay 200, readiness warns."""
    tips(web)
    upstream.set_mode("error", status=500)
    for _ in range(6):
        assert tips(web).json()["source"] == "stale"
    # A caller gets stale tips after the stale budget while the failing call goes on (and
    # the next caller may share it): on a loaded machine six callers can be fewer failures,
    # counted when each call ends. Go on failing until the breaker says open.
    ready = wait_for(lambda: tips(web).json()["source"] == "stale" and _open_breaker(web),
                     timeout=10)  # fmt: skip
    upstream.reset_stats()
    assert tips(web).json()["source"] == "stale"
    assert upstream.stats()["requests"] == 0  # the open breaker did not call it
    assert ready.status_code == 200
    entry = ready.json()["checks"]["upstream:circuitBreaker"][0]
    assert entry["status"] == "warn"


def _open_breaker(web: WebServer) -> httpx.Response | None:
    """Readiness, once it shows the upstream's breaker open."""
    ready = web.get("/health/ready")
    entry = ready.json()["checks"]["upstream:circuitBreaker"][0]
    return ready if "open" in entry.get("output", "") else None  # a closed one has none


def test_hanging_upstream_costs_one_attempt(web: WebServer, upstream: UpstreamControl) -> None:
    """A hanging upstream gets one attempt (not retried after its timeout), and stale tips
    are served meanwhile."""
    tips(web)
    upstream.set_mode("hang")
    upstream.reset_stats()
    body = tips(web).json()
    assert body["source"] == "stale"
    # One attempt: the request's deadline leaves nothing for a retry after a timeout.
    assert upstream.stats()["requests"] == 1


def test_killed_redis_costs_no_errors(healthy_stack: Stack, web: WebServer) -> None:
    """Redis killed mid-test: every request still answers 200 from the upstream."""
    tips(web)
    kill(healthy_stack.children["redis"])
    sources = [tips(web).json()["source"] for _ in range(20)]
    assert set(sources) == {"live"}


def test_paused_redis_costs_no_errors(
    healthy_stack: Stack, web: WebServer, upstream: UpstreamControl
) -> None:
    """Redis stopped (SIGSTOP) mid-test: concurrent requests all answer, stale when needed."""
    tips(web)
    kill(healthy_stack.children["redis"], signal.SIGSTOP)
    with concurrent.futures.ThreadPoolExecutor(max_workers=10) as pool:
        live = list(pool.map(lambda _: web.get("/api/tips").status_code, range(30)))
        upstream.set_mode("error", status=503)
        degraded = list(pool.map(lambda _: web.get("/api/tips"), range(30)))
    assert live == [200] * 30
    assert [r.status_code for r in degraded] == [200] * 30
    assert {r.json()["source"] for r in degraded} == {"stale"}


def test_bad_methods_are_refused(web: WebServer) -> None:
    """Only GET and HEAD: anything else is a JSON 405 naming what is allowed."""
    response = web.client.post("/api/tips")
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, HEAD"
    assert response.json()["code"] == "method_not_allowed"


def test_readiness_turns_back_to_pass_when_the_breaker_closes(
    healthy_stack: Stack, tmp_path: Path, upstream: UpstreamControl
) -> None:
    """Open breaker → readiness warn; upstream back and the reset period over → pass again."""
    with run_web(healthy_stack, tmp_path, REDIS_URL=fresh_redis(healthy_stack), CACHE_TTL="0",
                 BREAKER_RESET_TIMEOUT="0.5", BREAKER_SHARED="0") as server:  # fmt: skip
        upstream.set_mode("refuse")
        for _ in range(6):
            tips(server)
        wait_for(lambda: server.get("/health/ready").json()["status"] == "warn")
        upstream.set_mode("normal")
        wait_for(lambda: tips(server).json()["source"] == "live")
        wait_for(lambda: server.get("/health/ready").json()["status"] == "pass",
                 show=lambda: server.get("/health/ready").json())  # fmt: skip


def test_a_hung_refresh_costs_callers_the_stale_budget_not_the_timeout(
    healthy_stack: Stack, tmp_path: Path, upstream: UpstreamControl
) -> None:
    """Stale tips at hand and the upstream hung (its timeout 30 s, the client's 10 s): every
    caller is served them after the budget while one refresh hangs for all; once the upstream
    answers, that refresh lands and the next callers get fresh tips from the cache."""
    # Not hedged: one call is counted.
    with run_web(healthy_stack, tmp_path, REDIS_URL=fresh_redis(healthy_stack), CACHE_TTL="1",
                 UPSTREAM_TIMEOUT="30", BREAKER_SHARED="0",
                 UPSTREAM_HEDGE="0") as server:  # fmt: skip
        assert tips(server).json()["source"] == "live"
        upstream.set_mode("hang")
        upstream.reset_stats()
        wait_for(lambda: tips(server).json()["source"] == "stale")  # the ttl has passed
        with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
            during = list(pool.map(lambda _: tips(server).json(), range(40)))
        hung = upstream.stats()
        upstream.set_mode("normal")  # releases the hung refresh: it answers, and lands
        fresh = wait_for(lambda: (body := tips(server).json())["source"] == "cache" and body)
    assert {body["source"] for body in during} == {"stale"}
    assert (hung["requests"], hung["in_flight"]) == (1, 1)  # one refresh, shared by all
    assert fresh["age"] < 1  # loaded after the stale copy: the refresh's own answer


def unusable_warnings(web: WebServer) -> list[dict[str, object]]:
    """The warnings the server logged about the upstream's unusable answers."""
    lines = web.child.log_path.read_text().splitlines()
    entries = [json.loads(line) for line in lines if line.startswith("{")]
    ours = ("resilience_async.http", "warning")
    return [entry for entry in entries if (entry["logger"], entry["level"]) == ours]


def test_a_512_mib_upstream_answer_costs_the_worker_no_memory(
    healthy_stack: Stack, tmp_path: Path, upstream: UpstreamControl
) -> None:
    """The upstream answers 200 with 512 MiB: declared, chunked, or a gzip bomb. Every
    request is served the stale tips, each one still asks the upstream (the body limit
    saves the worker, not the breaker), and over 60 of them the worker's peak memory stays
    within 16 MiB of before: nothing read is held, not even until the next collection."""
    # Not hedged: 60 calls are counted.
    with run_web(healthy_stack, tmp_path, REDIS_URL=fresh_redis(healthy_stack), CACHE_TTL="0",
                 CACHE_STALE_BUDGET="off", BREAKER_FAIL_MAX="1000", BREAKER_WINDOW="1000",
                 BREAKER_MIN_CALLS="1000", BREAKER_SHARED="0",
                 UPSTREAM_HEDGE="0") as server:  # fmt: skip
        assert tips(server).json()["source"] == "live"
        baseline = reset_peak_memory(server.child.pid)
        upstream.reset_stats()
        sources = []
        for chunked, gzip in ((False, False), (True, False), (True, True)):
            upstream.set_mode("oversized", size=HUGE, chunked=chunked, gzip=gzip, delay_ms=0)
            sources += [tips(server).json()["source"] for _ in range(20)]
        peak = memory_kib(server.child.pid)["VmHWM"]
        served = wait_for(lambda: (stats := upstream.stats())["in_flight"] == 0 and stats)
        exposition = server.get("/metrics").text
    assert sources == ["stale"] * 60
    assert served["requests"] == 60
    assert peak - baseline < 16 * 1024, f"peak {peak} KiB, baseline {baseline} KiB"
    labels = {"upstream": "tips-upstream", "reason": "too_large"}
    assert metric(exposition, "upstream_unusable_responses_total", **labels) == 60


@pytest.mark.parametrize(
    ("garbage", "reason", "quoted"),
    [
        ("truncated_json", "malformed_json", "Set a time"),
        ("html", "malformed_json", "doctype"),
        ("wrong_shape", "wrong_shape", "none today"),
        ("bad_gzip", "bad_encoding", "is not gzip"),
    ],
)
def test_a_garbage_answer_serves_the_fallback_and_the_log_says_why(
    web: WebServer, upstream: UpstreamControl, garbage: str, reason: str, quoted: str
) -> None:
    """A 200 carrying garbage: the built-in tips are served, one warning names the upstream
    and the reason (never the body), and the metrics count every such answer."""
    upstream.set_mode("garbage", garbage=garbage)
    sources = [tips(web).json()["source"] for _ in range(3)]
    warnings = unusable_warnings(web)
    exposition = web.get("/metrics").text
    assert sources == ["fallback"] * 3
    assert [(entry["upstream"], entry["reason"]) for entry in warnings] == [
        ("tips-upstream", reason)
    ]
    assert f"answered unusably ({reason})" in str(warnings[0]["message"])
    assert quoted not in web.child.log_path.read_text()
    labels = {"upstream": "tips-upstream", "reason": reason}
    assert metric(exposition, "upstream_unusable_responses_total", **labels) == 3
