"""Health and metrics views: thin async views over the framework-free primitives."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from resilience_async import prometheus
from resilience_async._health import MEDIA_TYPE, Readiness
from resilience_async.django._responses import json_response, method_not_allowed

HEALTH_TOKEN_HEADER = "X-Health-Token"  # noqa: S105 - a header name, not a secret
_NO_STORE = {"Cache-Control": "no-store"}
_LIVE_BODY = b'{"status":"pass"}'


async def live(request: HttpRequest) -> HttpResponse:
    """200 while this process's event loop answers; touches no dependency."""
    rejected = method_not_allowed(request, "GET", "HEAD")
    if rejected is not None:
        return rejected
    return HttpResponse(_LIVE_BODY, content_type=MEDIA_TYPE, headers=_NO_STORE)


def wants_details(request: HttpRequest) -> bool:
    """Details (hosts, errors) go only to DEBUG or to callers holding the health token."""
    if settings.DEBUG:
        return True
    token = settings.HEALTH_TOKEN
    offered = request.headers.get(HEALTH_TOKEN_HEADER, "")
    return bool(token) and hmac.compare_digest(offered.encode(), token.encode())


def readiness_view(readiness: Readiness) -> Callable[..., object]:
    """A readiness view reporting `readiness` (503 until the lifespan has started serving)."""

    async def ready(request: HttpRequest) -> HttpResponse:
        rejected = method_not_allowed(request, "GET", "HEAD")
        if rejected is not None:
            return rejected
        report = await readiness.report()
        body = report.to_json(detailed=wants_details(request))
        return json_response(
            body, status=report.http_status, content_type=MEDIA_TYPE, headers=_NO_STORE
        )

    return ready


async def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition of every server process (multiprocess mode) or this one."""
    rejected = method_not_allowed(request, "GET", "HEAD")
    if rejected is not None:
        return rejected
    directory = settings.METRICS_MULTIPROC_DIR
    if directory:
        # One file read per process: off the loop (a scrape, not a request path).
        body = await asyncio.to_thread(prometheus.render, directory)
    else:
        body = prometheus.render(None)
    return HttpResponse(body, content_type=prometheus.CONTENT_TYPE)
