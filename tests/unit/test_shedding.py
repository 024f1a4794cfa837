"""Load shedding: past MAX_IN_FLIGHT_REQUESTS, a request is answered 503 at once."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from django.http import HttpRequest, HttpResponse
from django.urls import path

from resilience_async.django.handler import EventLoopASGIHandler
from resilience_async.django.views import live

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
    assert refused.json()["error"]["code"] == "overloaded"
    assert len(entered) == 3  # the refused one never reached the view; the later one did
    assert probe.status_code == 200
    assert [answer.status_code for answer in answers] == [200, 200]
    assert after.status_code == 200
