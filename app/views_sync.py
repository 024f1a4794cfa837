"""The sync twin: the same API done the guide's way, for the benchmark.

pybreaker around `requests`, the Django cache (Redis) as the fallback store, sync views under
gunicorn. It is faithful to the guide on purpose, flaws included: pybreaker holds its lock
across the call, so under threads every call through one breaker is serialised.
"""

from __future__ import annotations

from typing import Any

import pybreaker
import requests
from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, JsonResponse

from app.services import FALLBACK_TIPS

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
