"""Two web instances behind a real HAProxy (`STACK_INSTANCES=2`), as the stack starts them.

One module fixture: the session stack's dependencies, two uvicorn instances and HAProxy in
front, started by the supervisor's own code. Faults are real signals; what HAProxy decided is
read from its admin socket, what the instances did from their metrics and the database.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import psycopg
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from devstack.stack import Stack
from devstack.stack import haproxy as balancer
from devstack.stack.ports import free_port
from devstack.stack.supervisor import Supervisor, start_instances
from devstack.stack.waits import http_ok
from devstack.upstream import UpstreamControl
from project.builders import TIPS
from tests.helpers import metric, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.beside_scenarios]

HOST = "127.0.0.1"
REDIS_DB = 3  # the instances' own: their breaker, caches and limits touch no other test's


@dataclass
class Balanced:
    stack: Stack
    supervisor: Supervisor
    admin: balancer.Admin
    url: str
    api_key: str

    def instance_url(self, name: str) -> str:
        return str(self.stack.services[name]["url"])

    def client(self, url: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.api_key}"}
        return httpx.Client(base_url=url or self.url, timeout=20, headers=headers)

    def pid(self, name: str) -> int:
        return self.supervisor.apps[name].child.pid

    def restart(self, name: str) -> None:
        """Start `name` again (after a test stopped or killed it): ready, and UP in HAProxy."""
        self.supervisor.restart(name)
        wait_for(http_ok(f"{self.instance_url(name)}/health/ready"), timeout=20)
        self.admin.wait_status(name, "UP", timeout=20)


@pytest.fixture(scope="module")
def balanced(stack: Stack) -> Iterator[Balanced]:
    """web-1 and web-2 (one process each) behind HAProxy on a free port."""
    redis_url = stack.env["REDIS_URL"].rsplit("/", 1)[0] + f"/{REDIS_DB}"
    env = {
        **os.environ,
        **stack.env,
        "REDIS_URL": redis_url,
        "LOG_FORMAT": "json",
        "HEALTH_CACHE_TTL": "0.2",
        # Every tips request asks the upstream once, and 3 failures open the breaker for
        # longer than the test: what the other instance does is plain to count.
        "CACHE_TTL": "0",
        "UPSTREAM_RETRY_ATTEMPTS": "1",
        "BREAKER_FAIL_MAX": "3",
        "BREAKER_RESET_TIMEOUT": "60",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # each instance's /metrics is its own
    stack.heal()  # whatever earlier tests left dead or paused
    with UpstreamControl(stack.env["TIPS_UPSTREAM_CONTROL_URL"]) as control:
        control.set_mode("normal")
    supervisor = Supervisor(stack, say=lambda _line: None)
    (stack.run_dir / "metrics").mkdir(exist_ok=True)
    names = ("web-1", "web-2", "haproxy")
    try:
        url = start_instances(
            stack, supervisor, env, host=HOST, port=free_port(), workers=1, instances=2
        )
        admin = balancer.Admin(stack.services["haproxy"]["admin_socket"])
        yield Balanced(stack, supervisor, admin, url, env["API_KEY"])
    finally:
        children = [stack.children.pop(name) for name in names if name in stack.children]
        for child in children:  # all at once: each drains for its delay
            child.resume()
            child.begin_stop()
        deadline = time.monotonic() + 8
        for child in children:
            child.finish_stop(deadline)
        for name in names:
            stack.services.pop(name, None)
        with redis.Redis.from_url(redis_url) as client:
            client.flushdb()


def served(admin: balancer.Admin) -> dict[str, int]:
    """2xx answers per instance so far, as HAProxy counted them."""
    return {name: int(row["hrsp_2xx"]) for name, row in admin.servers().items()}


def test_requests_reach_both_instances(balanced: Balanced) -> None:
    """Round robin over both, and state.json says where each part runs."""
    before = served(balanced.admin)
    with balanced.client() as client:
        for _ in range(20):
            assert client.get("/api/tips").status_code == 200
    after = served(balanced.admin)
    assert {name: after[name] - before[name] for name in after} == {"web-1": 10, "web-2": 10}
    recorded = (balanced.stack.state.read() or {})["services"]
    assert recorded["haproxy"]["url"] == balanced.url
    assert recorded["haproxy"]["instances"] == ["web-1", "web-2"]
    assert {recorded[name]["port"] for name in ("web-1", "web-2", "haproxy")} == {
        int(balanced.instance_url("web-1").rsplit(":", 1)[1]),
        int(balanced.instance_url("web-2").rsplit(":", 1)[1]),
        int(balanced.url.rsplit(":", 1)[1]),
    }


def test_a_draining_instance_is_taken_out_before_it_stops(balanced: Balanced) -> None:
    """SIGTERM web-1 under reads: HAProxy marks it DOWN while it still accepts (within its
    drain delay), no read fails, and it comes back UP once started again."""
    admin, child = balanced.admin, balanced.supervisor.apps["web-1"].child
    errors: list[str] = []
    reads, stopped_after = 0, None
    with ThreadPoolExecutor(1) as pool, balanced.client() as client:
        signalled = time.monotonic()
        restarting = pool.submit(balanced.supervisor.restart, "web-1")  # SIGTERM, exit, start
        down_after = admin.wait_status("web-1", "DOWN", timeout=balancer.DRAIN_DELAY)
        assert child.alive(), "web-1 had exited before HAProxy marked it down"
        deadline = time.monotonic() + 20
        while not (restarting.done() and admin.status("web-1") == "UP"):
            assert time.monotonic() < deadline, f"web-1 not back: {admin.status('web-1')}"
            if stopped_after is None and not child.alive():
                stopped_after = time.monotonic() - signalled
            try:
                answer = client.get("/api/tips")
                reads += 1
                if answer.status_code != 200:
                    errors.append(f"{answer.status_code} {answer.text[:100]}")
            except httpx.HTTPError as exc:
                errors.append(repr(exc))
        restarting.result()
    assert stopped_after is not None
    assert down_after < balancer.DRAIN_DELAY < stopped_after
    assert reads > 50
    assert errors == []


def test_a_post_without_key_is_not_resent_to_another_instance(balanced: Balanced) -> None:
    """Three requests reach web-1, which is frozen, then killed: HAProxy resends the GET
    and the keyed POST to web-2 (answered 200 and 201), but not the POST without a key
    (answered 502: it might have been committed on web-1)."""
    admin, name = balanced.admin, "web-1"
    key = str(uuid.uuid4())
    body = {"item": "tea", "quantity": 1}
    requests: dict[str, Callable[[httpx.Client], httpx.Response]] = {
        "read": lambda c: c.get("/api/tips"),
        "keyed write": lambda c: c.post("/api/orders", json=body, headers={"Idempotency-Key": key}),
        "write": lambda c: c.post("/api/orders", json=body),
    }
    admin.set_state("web-2", "maint")
    os.kill(balanced.pid(name), signal.SIGSTOP)
    try:
        with ThreadPoolExecutor(len(requests)) as pool:
            answers = {
                label: pool.submit(_send, balanced, send) for label, send in requests.items()
            }
            wait_for(lambda: int(admin.servers()[name]["scur"]) == len(requests), timeout=10,
                     show=lambda: admin.servers()[name])  # fmt: skip
            admin.set_state("web-2", "ready")
            admin.wait_status("web-2", "UP")
            os.killpg(balanced.pid(name), signal.SIGKILL)
            statuses = {label: answer.result().status_code for label, answer in answers.items()}
    finally:
        admin.set_state("web-2", "ready")
        balanced.stack.children[name].resume()
    assert statuses == {"read": 200, "keyed write": 201, "write": 502}
    with psycopg.connect(balanced.stack.env["DATABASE_URL"]) as conn:
        row = conn.execute(
            "SELECT count(*) FROM idempotency_keys WHERE key = %s", (key,)
        ).fetchone()
    assert row == (1,)
    balanced.restart(name)


def _send(balanced: Balanced, send: Callable[[httpx.Client], httpx.Response]) -> httpx.Response:
    with balanced.client() as client:
        return send(client)


def test_a_breaker_tripped_through_one_instance_is_open_on_the_other(
    balanced: Balanced,
) -> None:
    """The tips breaker's open state is shared through Redis: web-1 trips it on a failing
    upstream, and web-2 then refuses its calls without asking the upstream at all."""
    control_url = balanced.stack.env["TIPS_UPSTREAM_CONTROL_URL"]
    with (
        UpstreamControl(control_url) as control,
        balanced.client(balanced.instance_url("web-1")) as one,
        balanced.client(balanced.instance_url("web-2")) as other,
    ):
        try:
            control.set_mode("error", status=500)
            # Each request (answered from the fallback) has web-1 ask the failing upstream.
            wait_for(lambda: one.get("/api/tips").status_code == 200 and breaker_state(one) == 2,
                     timeout=5)  # fmt: skip
            wait_for(lambda: breaker_state(other) == 2, timeout=5)
            control.reset_stats()
            asked_before = upstream_requests(other)
            for _ in range(5):
                assert other.get("/api/tips").status_code == 200  # stale or built-in tips
            assert control.stats()["requests"] == 0
            assert upstream_requests(other) == asked_before
        finally:
            control.set_mode("normal")


def breaker_state(client: httpx.Client) -> float | None:
    return metric(client.get("/metrics").text, "circuit_breaker_state", breaker=TIPS)


def upstream_requests(client: httpx.Client) -> float:
    """Every outbound request the instance made to the tips upstream, whatever the outcome."""
    exposition = client.get("/metrics").text
    return sum(
        sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == "upstream_requests_total"
    )
