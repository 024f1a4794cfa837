"""Health and metrics views: thin async views over the framework-free primitives.

What a view needs (the readiness to report, the token that unlocks details, the metrics
directory) comes from the composition root as arguments, not from settings the adapter
would have to invent names and defaults for: any Django project can route to them.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
from collections.abc import Awaitable, Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from resilience_async._health import MEDIA_TYPE, Readiness
from resilience_async._problem import MEDIA_TYPE as PROBLEM_JSON
from resilience_async._problem import problem_bytes
from resilience_async.django._responses import (
    json_response,
    method_not_allowed,
    problem_response,
)

View = Callable[[HttpRequest], Awaitable[HttpResponse]]

HEALTH_TOKEN_HEADER = "X-Health-Token"  # noqa: S105 - a header name, not a secret
_NO_STORE = {"Cache-Control": "no-store"}
_LIVE_BODY = b'{"status":"pass"}'


async def live(request: HttpRequest) -> HttpResponse:
    """200 while this process's event loop answers; touches no dependency."""
    rejected = method_not_allowed(request, "GET", "HEAD")
    if rejected is not None:
        return rejected
    return HttpResponse(_LIVE_BODY, content_type=MEDIA_TYPE, headers=_NO_STORE)


def wants_details(request: HttpRequest, health_token: str) -> bool:
    """Details (hosts, errors) go only to DEBUG or to callers holding the health token."""
    if settings.DEBUG:  # Django's own setting: always there
        return True
    offered = request.headers.get(HEALTH_TOKEN_HEADER, "")
    return bool(health_token) and hmac.compare_digest(offered.encode(), health_token.encode())


def readiness_view(readiness: Readiness, *, health_token: str = "") -> View:
    """A readiness view reporting `readiness` (503 until the lifespan has started serving).

    Args:
        readiness: the checks to run and the lifecycle they are reported for.
        health_token: the `X-Health-Token` value that unlocks the report's details (hosts,
            latencies, errors) when DEBUG is off; empty: nobody gets them.
    """

    async def ready(request: HttpRequest) -> HttpResponse:
        rejected = method_not_allowed(request, "GET", "HEAD")
        if rejected is not None:
            return rejected
        report = await readiness.report()
        body = report.to_json(detailed=wants_details(request, health_token))
        response = json_response(
            body, status=report.http_status, content_type=MEDIA_TYPE, headers=_NO_STORE
        )
        # A 503 here is the answer a probe needs, not a server error: no log line per probe
        # (the checks log their state changes, and /metrics counts the answers).
        response._has_been_logged = True  # type: ignore[attr-defined]
        return response

    return ready


def metrics_view(*, multiprocess_dir: str | None = None, token: str = "") -> View:
    """A view of the Prometheus exposition (imports `resilience_async.prometheus`, and so
    needs the `prometheus` extra, when it is made).

    A scrape from loopback is served; one from elsewhere must carry `token` as
    `Authorization: Bearer <token>` (Prometheus's `authorization` scrape setting), and is
    refused when no token is set: the metrics name dependencies, routes and volumes.

    Args:
        multiprocess_dir: prometheus-client's multiprocess directory (the
            `PROMETHEUS_MULTIPROC_DIR` its processes write to) when several server processes
            serve: the view sums them all; None or empty: this process's values.
        token: the scrape token off loopback; empty: only loopback is served.
    """
    from resilience_async import prometheus  # noqa: PLC0415 - the extra, only when routed

    expected = f"Bearer {token}".encode()

    async def metrics(request: HttpRequest) -> HttpResponse:
        rejected = method_not_allowed(request, "GET", "HEAD")
        if rejected is not None:
            return rejected
        if not _loopback(request.META.get("REMOTE_ADDR", "")):
            if not token:
                return problem_response(403, "forbidden", "metrics are served on loopback only")
            offered = request.META.get("HTTP_AUTHORIZATION", "").encode()
            if not hmac.compare_digest(offered, expected):
                return problem_response(
                    401,
                    "unauthorized",
                    "send the scrape token: Authorization: Bearer <token>",
                    field="Authorization",
                    headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
                )
        if multiprocess_dir:
            # One file read per process: off the loop (a scrape, not a request path).
            body = await asyncio.to_thread(prometheus.render, multiprocess_dir)
        else:
            body = prometheus.render(None)
        return HttpResponse(body, content_type=prometheus.CONTENT_TYPE)

    return metrics


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:  # no address (a Unix socket), or not one
        return False


def server_error(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
    """Django's `handler500`: a problem details body instead of Django's HTML page.

    Django calls it synchronously, then logs the exception as an ERROR with its traceback:
    an unexpected failure is the one answer that must be logged per request.
    """
    body = problem_bytes(500, "internal_error", "the server failed; its log has the details")
    return HttpResponse(body, status=500, content_type=PROBLEM_JSON)
