"""/metrics answers loopback, and elsewhere only a scrape carrying the token."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from django.urls import path

from resilience_async.django import EventLoopASGIHandler, metrics_view

urlpatterns = [
    path("open", metrics_view()),
    path("tokened", metrics_view(token="scrape-secret")),
]


@pytest.fixture(autouse=True)
def _urls(settings: Any) -> None:
    settings.ROOT_URLCONF = __name__


async def scrape(path: str, address: str, authorization: str | None = None) -> httpx.Response:
    transport = httpx.ASGITransport(app=EventLoopASGIHandler(), client=(address, 40000))
    headers = {} if authorization is None else {"Authorization": authorization}
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        return await client.get(f"/{path}", headers=headers)


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "127.8.9.10"])
async def test_loopback_is_served_without_a_token(address: str) -> None:
    for route in ("open", "tokened"):
        response = await scrape(route, address)
        assert response.status_code == 200
        assert "# TYPE" in response.text


async def test_elsewhere_is_refused_while_no_token_is_set() -> None:
    response = await scrape("open", "10.0.0.7", "Bearer anything")
    assert response.status_code == 403
    assert response.headers["Content-Type"] == "application/problem+json"
    assert "# TYPE" not in response.text


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", "scrape-secret", "Basic x"])
async def test_elsewhere_without_the_token_is_401(authorization: str | None) -> None:
    response = await scrape("tokened", "10.0.0.7", authorization)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert response.json()["field"] == "Authorization"


async def test_elsewhere_with_the_token_is_served() -> None:
    response = await scrape("tokened", "192.0.2.1", "Bearer scrape-secret")
    assert response.status_code == 200
    assert "# TYPE" in response.text
