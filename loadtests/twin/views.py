"""The sync twin: the same API done the guide's way, for the benchmark.

pybreaker around `requests`, the Django cache (Redis) as the fallback store, sync views under
gunicorn. It is faithful to the guide on purpose, flaws included: pybreaker holds its lock
across the call, so under threads every call through one breaker is serialised.
"""

from __future__ import annotations

import functools
from typing import Any

import dramatiq
import pybreaker
import requests
from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponseBase, JsonResponse

from app import schemas
from app.errors import InvalidInput
from app.models import Order, Report
from app.tips import FALLBACK_TIPS

session = requests.Session()  # keep-alive, as any production user of requests would


def is_client_error(exc: BaseException) -> bool:
    """4xx answers are the caller's mistakes, not the upstream's failures."""
    response = getattr(exc, "response", None)
    return response is not None and response.status_code < 500 and response.status_code != 429


tips_breaker = pybreaker.CircuitBreaker(
    fail_max=settings.BREAKER_FAIL_MAX,
    reset_timeout=settings.BREAKER_RESET_TIMEOUT,
    exclude=[is_client_error],
    name="tips-upstream",
)


def use_breaker(breaker: pybreaker.CircuitBreaker) -> None:
    """Swap the tips breaker (the benchmark's tuned variant uses one without the call lock)."""
    global tips_breaker  # noqa: PLW0603 - one breaker per process, as in the guide
    tips_breaker = breaker


def live(request: HttpRequest) -> JsonResponse:
    """200 while the process answers; touches no dependency."""
    return JsonResponse({"status": "pass"}, content_type="application/health+json")


def _fetch_tips() -> list[dict[str, Any]]:
    response = session.get(f"{settings.TIPS_UPSTREAM_URL}/tips", timeout=settings.UPSTREAM_TIMEOUT)
    response.raise_for_status()
    return list(response.json()["tips"])


def tips(request: HttpRequest) -> JsonResponse:
    """The guide's graceful degradation: live through the breaker, else cached, else a default."""
    try:
        data = tips_breaker.call(_fetch_tips)
    except (pybreaker.CircuitBreakerError, requests.RequestException, ValueError, KeyError):
        cached = cache.get("tips")
        if cached is not None:
            return JsonResponse({"tips": cached, "source": "stale"})
        return JsonResponse({"tips": FALLBACK_TIPS, "source": "fallback"})
    cache.set("tips", data, timeout=settings.CACHE_TTL + settings.CACHE_STALE_TTL)
    return JsonResponse({"tips": data, "source": "live"})


# --- orders and reports: the Django ORM, routers.py's router, the broker from the request ---


def _error(status: int, code: str, message: str, field: str | None = None) -> JsonResponse:
    error = {"code": code, "message": message, **({"field": field} if field else {})}
    return JsonResponse({"error": error}, status=status)


def _order_json(order: Order) -> dict[str, Any]:
    return {"id": order.pk, "item": order.item, "quantity": order.quantity,
            "created_at": order.created_at.isoformat()}  # fmt: skip


def orders(request: HttpRequest) -> HttpResponseBase:
    """POST creates on the primary; GET lists from the replica (the router decides)."""
    try:
        if request.method == "POST":
            new = schemas.parse_new_order(request.content_type or "", request.body)
            order = Order.objects.create(item=new.item, quantity=new.quantity)
            return JsonResponse(_order_json(order), status=201)
        if request.method != "GET":
            return _error(405, "method_not_allowed", f"{request.method} is not allowed here")
        limit, before = schemas.parse_page(request.GET)
    except InvalidInput as exc:
        return _error(exc.status, exc.code, exc.message, exc.field)
    found = Order.objects.order_by("-id")
    if before is not None:
        found = found.filter(id__lt=before)
    page = list(found[:limit])
    next_before = page[-1].pk if len(page) == limit else None
    return JsonResponse({"orders": [_order_json(o) for o in page], "next_before": next_before})


def order(request: HttpRequest, order_id: int) -> HttpResponseBase:
    found = Order.objects.filter(pk=order_id).first() if order_id <= schemas.MAX_ID else None
    if found is None:
        return _error(404, "not_found", f"no order {order_id}")
    return JsonResponse(_order_json(found))


def reports(request: HttpRequest) -> HttpResponseBase:
    """The guide's `process_large_data.delay()`: the row, then the broker, from the request.

    Two writes to two systems without a transaction between them: a broker that is down
    after the row committed leaves a report no worker will ever build (503 here). The async
    service's outbox is the answer.
    """
    if request.method != "POST":
        return _error(405, "method_not_allowed", f"{request.method} is not allowed here")
    try:
        params = schemas.parse_report_params(request.content_type or "", request.body)
    except InvalidInput as exc:
        return _error(exc.status, exc.code, exc.message, exc.field)
    report = Report.objects.create(params=params)
    from workers import actors  # noqa: PLC0415 - the broker, only when used

    try:
        _broker().enqueue(actors.message(actors.BUILD_REPORT, {"report_id": str(report.pk)}))
    except Exception as exc:
        return _error(503, "broker_unavailable", f"report {report.pk} saved, not queued: {exc}")
    return JsonResponse({"id": str(report.pk), "status": "queued"}, status=202)


@functools.cache
def _broker() -> dramatiq.Broker:
    """The broker `.delay()` sends to, made on first use (one per process, as in the guide)."""
    from workers.broker import make_broker  # noqa: PLC0415 - the broker, only when used

    return make_broker(
        settings.BROKER_URL,
        heartbeat_timeout=settings.JOBS_HEARTBEAT_TIMEOUT,
        maintenance_chance=settings.JOBS_MAINTENANCE_CHANCE,
    )


def report(request: HttpRequest, report_id: Any) -> HttpResponseBase:
    found = Report.objects.filter(pk=report_id).first()
    if found is None:
        return _error(404, "not_found", f"no report {report_id}")
    body = {"id": str(found.pk), "status": found.status, "params": found.params,
            "attempts": found.attempts}  # fmt: skip
    if found.status == Report.Status.DONE:
        body["result"] = found.result
    if found.error:
        body["error"] = found.error
    return JsonResponse(body)
