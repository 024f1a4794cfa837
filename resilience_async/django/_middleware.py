"""Middleware that runs on the event loop under ASGI (and natively under WSGI).

Django's `MiddlewareMixin` classes call `process_request` through `sync_to_async` under ASGI:
one thread hand-off per middleware per request. These are written in Django's
sync-and-async style instead, so each runs in whichever mode its server speaks.

Django builds middleware from dotted paths, so no argument can reach it: the settings it
reads are read with `getattr(settings, NAME, default)` (`ACCESS_LOG`, `METRICS_ENABLED`),
so a project that has never heard of them gets the defaults, not an AttributeError.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Awaitable, Callable
from contextvars import Token
from inspect import iscoroutinefunction
from typing import Protocol, cast

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponseBase
from django.utils.decorators import sync_and_async_middleware

from resilience_async._logs import Throttle, request_id_var
from resilience_async.django._headers import add_missing, prepare, put
from resilience_async.django._responses import problem_response

Handler = Callable[[HttpRequest], HttpResponseBase]
AsyncHandler = Callable[[HttpRequest], Awaitable[HttpResponseBase]]

REQUEST_ID_HEADER = "X-Request-ID"
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_MAX_REMEMBERED_HOSTS = 64
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
access_logger = logging.getLogger("resilience_async.access")
security_logger = logging.getLogger("django.security.DisallowedHost")
# A refused Host header is logged once per this many seconds at most, cut to this length.
HOST_LOG_INTERVAL = 60.0
_MAX_LOGGED_HOST = 100


class RequestRecorder(Protocol):
    """Records one request's duration (`resilience_async.prometheus.RequestRecorder` is one)."""

    def record(self, method: str, route: str, status: int, seconds: float, /) -> None: ...


def request_recorder() -> RequestRecorder | None:
    """Prometheus's, when `METRICS_ENABLED` (default on); imported only then."""
    if not getattr(settings, "METRICS_ENABLED", True):
        return None
    from resilience_async.prometheus import RequestRecorder as Prometheus  # noqa: PLC0415

    return Prometheus()


class _RequestContext:
    """Per-request id, timing and route labelling, shared by the sync and async paths."""

    def __init__(self, recorder: RequestRecorder | None, *, access_log: bool) -> None:
        self._recorder = recorder
        self._access_log = access_log

    def begin(self, request: HttpRequest) -> tuple[Token[str | None], float]:
        incoming = request.META.get("HTTP_X_REQUEST_ID", "")
        if not valid_request_id(incoming):
            # An id correlates log lines; it guards nothing, so no need for os.urandom.
            incoming = f"{random.getrandbits(64):016x}"
        return request_id_var.set(incoming), time.perf_counter()

    def finish(self, request: HttpRequest, response: HttpResponseBase, started: float) -> None:
        elapsed = time.perf_counter() - started
        # The id matched _VALID_REQUEST_ID or is hex: nothing for Django to check.
        put(response.headers, REQUEST_ID_HEADER, request_id_var.get() or "")
        match = request.resolver_match
        route = match.route if match is not None else "unmatched"
        method = request.method if request.method in KNOWN_METHODS else "OTHER"
        if self._recorder is not None:
            self._recorder.record(method or "OTHER", route, response.status_code, elapsed)
        if self._access_log:
            access_logger.info(
                "%s %s %s",
                method,
                request.path,
                response.status_code,
                extra={"route": route, "status": response.status_code, "ms": elapsed * 1000},
            )


@sync_and_async_middleware
def request_context_middleware(get_response: Handler | AsyncHandler) -> Handler | AsyncHandler:
    """Request id (accepted from `X-Request-ID` or made), log context, request metrics, and
    one access-log line per request when `ACCESS_LOG` (default off)."""
    access_log = bool(getattr(settings, "ACCESS_LOG", False))
    context = _RequestContext(request_recorder(), access_log=access_log)

    if iscoroutinefunction(get_response):
        next_async = cast(AsyncHandler, get_response)

        async def middleware(request: HttpRequest) -> HttpResponseBase:
            # No reset: the request runs in its own task, whose context dies with it, and
            # Django logs the response (log_response) after this returns, with the id still set.
            _token, started = context.begin(request)
            response = await next_async(request)
            context.finish(request, response, started)
            return response

        return middleware

    next_sync = cast(Handler, get_response)

    def sync_middleware(request: HttpRequest) -> HttpResponseBase:
        token, started = context.begin(request)
        try:
            response = next_sync(request)
            context.finish(request, response, started)
            return response
        finally:
            request_id_var.reset(token)

    return sync_middleware


def security_headers() -> dict[str, str]:
    """The headers of Django's SecurityMiddleware an API answer gets, from the settings."""
    headers = {"X-Frame-Options": "DENY"}
    if settings.SECURE_CONTENT_TYPE_NOSNIFF:
        headers["X-Content-Type-Options"] = "nosniff"
    if settings.SECURE_REFERRER_POLICY:
        headers["Referrer-Policy"] = str(settings.SECURE_REFERRER_POLICY)
    if settings.SECURE_CROSS_ORIGIN_OPENER_POLICY:
        headers["Cross-Origin-Opener-Policy"] = settings.SECURE_CROSS_ORIGIN_OPENER_POLICY
    return headers


def valid_request_id(value: str) -> bool:
    """Whether a client's X-Request-ID can be kept (else the service makes one up)."""
    return _VALID_REQUEST_ID.fullmatch(value) is not None


class _Security:
    """Host validation and the security headers of Django's SecurityMiddleware for an API."""

    def __init__(self) -> None:
        self._headers = prepare(security_headers())  # checked once: set on every response
        self._hsts = _hsts_header()
        self._allowed: set[tuple[str | None, str | None]] = set()
        self._refusals = Throttle(HOST_LOG_INTERVAL)

    def reject(self, request: HttpRequest) -> HttpResponseBase | None:
        """A 400 when the Host header is not allowed (Django would raise DisallowedHost).

        Hosts that passed are remembered (a few: clients use few names), so the parsing and
        matching of `get_host()` runs once per name, not once per request.
        """
        meta = request.META
        key = (meta.get("HTTP_X_FORWARDED_HOST"), meta.get("HTTP_HOST"))
        if key in self._allowed:
            return None
        try:
            request.get_host()
        except DisallowedHost:
            self._log_refusal(key[1] if key[0] is None else key[0])
            return problem_response(400, "bad_host", "the Host header is not served here",
                                    field="Host")  # fmt: skip
        if len(self._allowed) < _MAX_REMEMBERED_HOSTS:
            self._allowed.add(key)
        return None

    def _log_refusal(self, host: str | None) -> None:
        """A warning with the first refused host of each interval, cut short, and how many
        were refused since the last one: junk Host headers can't flood the log."""
        refused = self._refusals.count()
        if not refused:
            return
        shown = (host or "")[:_MAX_LOGGED_HOST]
        security_logger.warning(
            "refused Host header %r (%d refused since the last warning)", shown, refused,
            extra={"host": shown, "refused": refused},
        )  # fmt: skip

    def decorate(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        """Add each header the view did not set itself."""
        headers = response.headers
        add_missing(headers, self._headers)
        if self._hsts and request.is_secure() and "Strict-Transport-Security" not in headers:
            headers["Strict-Transport-Security"] = self._hsts
        return response


def _hsts_header() -> str | None:
    if not settings.SECURE_HSTS_SECONDS:
        return None
    value = f"max-age={settings.SECURE_HSTS_SECONDS}"
    if settings.SECURE_HSTS_INCLUDE_SUBDOMAINS:
        value += "; includeSubDomains"
    if settings.SECURE_HSTS_PRELOAD:
        value += "; preload"
    return value


@sync_and_async_middleware
def security_middleware(get_response: Handler | AsyncHandler) -> Handler | AsyncHandler:
    """Rejects unknown Host headers with a JSON 400 and adds security headers."""
    security = _Security()

    if iscoroutinefunction(get_response):
        next_async = cast(AsyncHandler, get_response)

        async def middleware(request: HttpRequest) -> HttpResponseBase:
            rejection = security.reject(request)
            if rejection is not None:
                return security.decorate(request, rejection)
            return security.decorate(request, await next_async(request))

        return middleware

    next_sync = cast(Handler, get_response)

    def sync_middleware(request: HttpRequest) -> HttpResponseBase:
        rejection = security.reject(request)
        if rejection is not None:
            return security.decorate(request, rejection)
        return security.decorate(request, next_sync(request))

    return sync_middleware
