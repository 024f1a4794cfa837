"""Load shedding: past MAX_IN_FLIGHT_REQUESTS (or the adaptive limit), a request is answered
503 at once."""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import httpx
import pytest
from django.http import HttpRequest, HttpResponse
from django.urls import path

from resilience_async import AdaptiveLimit
from resilience_async.django import EventLoopASGIHandler, live

release = asyncio.Event()
both_inside = asyncio.Event()
entered: list[bool] = []


async def waits(request: HttpRequest) -> HttpResponse:
    entered.append(True)
    if len(entered) == 2:
        both_inside.set()
    await release.wait()
    return HttpResponse(b"{}", content_type="application/json")


urlpatterns = [path("waits", waits), path("health/live", live)]


@pytest.fixture(autouse=True)
def _shed_after_two(settings: Any) -> None:
    settings.ROOT_URLCONF = __name__
    settings.MAX_IN_FLIGHT_LIMIT = "fixed"
    settings.MAX_IN_FLIGHT_REQUESTS = 2
    entered.clear()


async def test_requests_past_the_limit_are_refused_at_once_and_health_still_answers() -> None:
    global release, both_inside
    release, both_inside = asyncio.Event(), asyncio.Event()
    transport = httpx.ASGITransport(app=EventLoopASGIHandler())
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        admitted = [asyncio.create_task(client.get("/waits")) for _ in range(2)]
        await both_inside.wait()
        refused = await client.get("/waits")
        probe = await client.get("/health/live")
        release.set()
        answers = await asyncio.gather(*admitted)
        after = await client.get("/waits")

    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "1"
    assert refused.json()["code"] == "overloaded"
    assert len(entered) == 3  # the refused one never reached the view; the later one did
    assert probe.status_code == 200
    assert [answer.status_code for answer in answers] == [200, 200]
    assert after.status_code == 200


async def test_a_refusal_is_the_service_s_error_with_its_headers_and_no_log_line_each(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Refused at the door: the error body and security headers a view's 503 would carry,
    the client's request id kept (a bad one replaced), each refusal counted, and one
    warning for a burst of them, not an error line each."""
    global release, both_inside
    release, both_inside = asyncio.Event(), asyncio.Event()
    handler = EventLoopASGIHandler()
    transport = httpx.ASGITransport(app=handler)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        admitted = [asyncio.create_task(client.get("/waits")) for _ in range(2)]
        await both_inside.wait()
        with caplog.at_level(logging.INFO):
            kept = await client.get("/waits", headers={"X-Request-ID": "client-id.1"})
            replaced = await client.get("/waits", headers={"X-Request-ID": "bad id!"})
            others = [await client.get("/waits") for _ in range(5)]
        release.set()
        await asyncio.gather(*admitted)

    assert kept.status_code == replaced.status_code == 503
    assert kept.json() == {
        "type": "/problems/overloaded", "title": "Overloaded", "status": 503,
        "detail": "the service is at its limit of 2 requests in flight", "code": "overloaded",
    }  # fmt: skip
    assert kept.headers["Content-Type"] == "application/problem+json"
    assert kept.headers["Retry-After"] == "1"
    assert kept.headers["X-Frame-Options"] == "DENY"
    assert kept.headers["X-Content-Type-Options"] == "nosniff"
    assert kept.headers["X-Request-ID"] == "client-id.1"
    assert re.fullmatch(r"[0-9a-f]{16}", replaced.headers["X-Request-ID"])
    assert len({r.headers["X-Request-ID"] for r in others}) == 5
    assert handler.admission is not None
    assert handler.admission.requests.stats()["rejected"] == 7
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        "overloaded: 1 requests refused (503) since the last warning, 2 in flight"
    ]


def test_no_limit_when_max_in_flight_requests_is_0(settings: Any) -> None:
    settings.MAX_IN_FLIGHT_REQUESTS = 0
    assert EventLoopASGIHandler().admission is None


async def test_a_request_past_the_limit_waits_for_a_place_before_it_is_refused(
    settings: Any,
) -> None:
    """With MAX_IN_FLIGHT_WAIT, a request past the limit that gets a place within the wait
    is served (a burst just over the limit is not refused); one that does not is refused
    only once the wait is over."""
    global release, both_inside
    release, both_inside = asyncio.Event(), asyncio.Event()
    settings.MAX_IN_FLIGHT_WAIT = 0.2
    loop = asyncio.get_running_loop()
    handler = EventLoopASGIHandler()
    transport = httpx.ASGITransport(app=handler)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        admitted = [asyncio.create_task(client.get("/waits")) for _ in range(2)]
        await both_inside.wait()
        started = loop.time()
        refused = await client.get("/waits")
        waited = loop.time() - started
        late = asyncio.create_task(client.get("/waits"))
        assert handler.admission is not None
        for _ in range(1000):  # bounded: until the late request waits at the door
            if handler.admission.requests.stats()["waiting"] == 1:
                break
            await asyncio.sleep(0)
        release.set()  # places free up within the late request's wait
        answers = await asyncio.gather(*admitted, late)

    assert refused.status_code == 503
    assert 0.2 <= waited < 1.0
    assert [answer.status_code for answer in answers] == [200, 200, 200]


async def test_the_adaptive_limit_refuses_past_its_limit_without_naming_a_number(
    settings: Any,
) -> None:
    """MAX_IN_FLIGHT_LIMIT=adaptive: the same ready-made 503 and Retry-After, a detail that
    claims no number (the limit moves), and the limit within MAX_IN_FLIGHT_MIN and
    MAX_IN_FLIGHT_REQUESTS from MAX_IN_FLIGHT_INITIAL."""
    global release, both_inside
    release, both_inside = asyncio.Event(), asyncio.Event()
    settings.MAX_IN_FLIGHT_LIMIT = "adaptive"
    settings.MAX_IN_FLIGHT_REQUESTS, settings.MAX_IN_FLIGHT_MIN = 50, 2
    settings.MAX_IN_FLIGHT_INITIAL = 2
    handler = EventLoopASGIHandler()
    assert handler.admission is not None
    requests = handler.admission.requests
    assert isinstance(requests, AdaptiveLimit)
    assert (requests.limit, requests.gradient.min_limit, requests.gradient.max_limit) == (2, 2, 50)
    transport = httpx.ASGITransport(app=handler)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        admitted = [asyncio.create_task(client.get("/waits")) for _ in range(2)]
        await both_inside.wait()
        refused = await client.get("/waits")
        release.set()
        answers = await asyncio.gather(*admitted)

    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "1"
    assert refused.json()["detail"] == (
        "the service has as many requests in flight as it serves without delay"
    )
    assert [answer.status_code for answer in answers] == [200, 200]
    assert requests.stats()["rejected"] == 1
    assert requests.in_flight == 0


def test_an_unknown_kind_of_limit_is_refused_by_name(settings: Any) -> None:
    settings.MAX_IN_FLIGHT_LIMIT = "elastic"
    with pytest.raises(ValueError, match="MAX_IN_FLIGHT_LIMIT"):
        EventLoopASGIHandler()
