"""The adaptive in-flight limit on the real service: it follows the load's latency down and
refuses the excess at the door, as the fixed limit does."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest

from devstack.stack import Stack
from loadtests.bench.generator import LoadResult, run_load_sync
from tests.helpers import assert_problem, metric
from tests.servers import WebServer, run_web

pytestmark = pytest.mark.integration

INITIAL = 200
CONNECTIONS = 256


@pytest.fixture(scope="module")
def web(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    """One worker whose limit starts high (200) and may fall to 4; a request past it is held
    0.2 s at most."""
    stack.heal()
    with run_web(stack, tmp_path_factory.mktemp("adaptive"), MAX_IN_FLIGHT_LIMIT="adaptive",
                 MAX_IN_FLIGHT_INITIAL=str(INITIAL), MAX_IN_FLIGHT_MIN="4",
                 MAX_IN_FLIGHT_WAIT="0.2") as server:  # fmt: skip
        yield server


def limit_now(web: WebServer) -> float | None:
    return metric(web.get("/metrics").text, "inflight_limit", limit="requests")


def test_the_limit_falls_under_load_and_the_excess_gets_a_fast_problem_503(
    web: WebServer,
) -> None:
    """A few connections teach the limit the requests' latency unloaded; then 256 asking
    at once for a read: the latency rises with the queue on the loop, so the limit falls
    from where it started, and the requests past it get the ready-made 503 (problem
    details, Retry-After), counted as refusals; every request is answered."""
    assert limit_now(web) == INITIAL
    url = f"{web.url}/api/orders?limit=5"
    calm = run_load_sync(url, connections=4, duration=1.5, timeout=10.0)
    assert calm.statuses == {200: calm.requests}
    assert limit_now(web) == INITIAL  # 4 in flight: the load, not latency, sets the pace
    loads: list[LoadResult] = []
    load = threading.Thread(target=lambda: loads.append(
        run_load_sync(url, connections=CONNECTIONS, duration=3.0, timeout=10.0)))  # fmt: skip
    load.start()
    refusal = None
    with httpx.Client(timeout=10) as client:
        for _ in range(2000):  # bounded: until one request of ours is refused
            answer = client.get(url)
            if answer.status_code == 503:
                refusal = answer
                break
    load.join(timeout=30)

    result = loads[0]
    shed = result.statuses.get(503, 0)
    assert result.error_count == 0
    assert set(result.statuses) <= {200, 503}
    assert shed > 0
    limit = limit_now(web)
    assert limit is not None
    assert 4 <= limit < INITIAL
    assert refusal is not None
    assert refusal.headers["Content-Type"] == "application/problem+json"
    assert refusal.headers["Retry-After"] == "1"
    problem = assert_problem(refusal.json(), 503)
    assert problem["code"] == "overloaded"
    assert "in flight" in problem["detail"]
    rejections = metric(web.get("/metrics").text, "bulkhead_rejections_total", bulkhead="requests")
    assert rejections is not None
    assert rejections >= shed + 1
