"""The Django adapter in a Django project that is not this one: it reads no setting of ours
without a default, and its views get what they need as arguments."""

from __future__ import annotations

from tests.helpers import fresh_python

# A foreign project: only what Django itself needs, and the adapter's two middlewares.
FOREIGN_PROJECT = """
import asyncio

import django
from django.conf import settings

settings.configure(
    ROOT_URLCONF=__name__,
    ALLOWED_HOSTS=["testserver"],
    MIDDLEWARE=[
        "resilience_async.django.request_context_middleware",
        "resilience_async.django.security_middleware",
    ],
)
django.setup()

import httpx
from django.test import AsyncClient, Client
from django.urls import path

from resilience_async import Check, Lifecycle, Observation, Phase, Readiness
from resilience_async.django import EventLoopASGIHandler, live, metrics_view, readiness_view

lifecycle = Lifecycle()
lifecycle.phase = Phase.SERVING


async def answers():
    return Observation(1.5, "ms")


readiness = Readiness([Check("thing", "responseTime", answers)], lifecycle=lifecycle)
urlpatterns = [
    path("live", live),
    path("ready", readiness_view(readiness)),
    path("ready-detailed", readiness_view(readiness, health_token="secret")),
    path("metrics", metrics_view()),
]


async def through_the_handler():
    transport = httpx.ASGITransport(app=EventLoopASGIHandler())
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        return (await client.get("/ready")).status_code


async def main():
    client = AsyncClient()
    for url in ("/live", "/ready", "/metrics"):
        response = await client.get(url)
        assert response.status_code == 200, (url, response.status_code, response.content)
        assert response["X-Request-ID"], url
        assert response["X-Frame-Options"] == "DENY", url
    ready = (await client.get("/ready")).json()
    assert ready == {"status": "pass", "checks": {"thing:responseTime": [{"status": "pass"}]}}
    detailed = await client.get("/ready-detailed", headers={"X-Health-Token": "secret"})
    assert detailed.json()["checks"]["thing:responseTime"][0]["observedValue"] == 1.5
    assert (await client.get("/live", headers={"Host": "elsewhere"})).status_code == 400
    assert await through_the_handler() == 200


asyncio.run(main())
assert Client().get("/live").status_code == 200  # the middlewares' sync path too
print("served")
"""


def test_a_foreign_django_project_serves_the_health_and_metrics_views() -> None:
    """Live, readiness (with and without its token) and metrics, through both middlewares,
    Django's test clients and the event-loop handler: no AttributeError for a setting."""
    done = fresh_python(FOREIGN_PROJECT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "served"
