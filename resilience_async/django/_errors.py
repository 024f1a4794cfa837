"""The one mapping of `resilience_async`'s errors to HTTP answers, for async views.

A dependency's failure is an expected answer (503 with `Retry-After`), not a server error:
the caller is told which dependency and its state (`ResilienceError.public_detail`), never
a host, a port or a driver's message. Those go to the log, in one warning per kind of
failure per `LOG_INTERVAL` with the count since the last, so an outage under load writes a
few lines, not one per request; `/metrics` has the counts.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

from django.http import HttpRequest, HttpResponseBase

from resilience_async._errors import (
    CircuitOpenError,
    DatabaseUnavailableError,
    FallbackUnavailableError,
    InvalidLsnError,
    ResilienceError,
    SaturatedError,
    UpstreamError,
    WriteOutcomeUnknownError,
)
from resilience_async._logs import Throttle
from resilience_async.django._responses import problem_response

# Named as it was before the module turned private: log configurations keep working.
logger = logging.getLogger("resilience_async.django.errors")

View = Callable[..., Awaitable[HttpResponseBase]]
LOG_INTERVAL = 10.0  # seconds between two warnings about one kind of failure

# Most specific first: the first match decides the answer.
_CODES: tuple[tuple[type[ResilienceError], str], ...] = (
    (SaturatedError, "overloaded"),
    (CircuitOpenError, "dependency_unavailable"),
    (UpstreamError, "dependency_failed"),
    (WriteOutcomeUnknownError, "write_outcome_unknown"),
    (DatabaseUnavailableError, "dependency_unavailable"),
    (FallbackUnavailableError, "dependency_unavailable"),
    (ResilienceError, "dependency_unavailable"),
)
_throttles: dict[tuple[type[ResilienceError], str], Throttle] = {}


def error_response(exc: ResilienceError) -> HttpResponseBase:
    """503 with a `Retry-After` (whole seconds, at least 1) and the dependency named in the
    body; 400 for the one caller's mistake in the tree, a malformed consistency token."""
    if isinstance(exc, InvalidLsnError):
        return problem_response(400, "invalid_consistency_token", exc.public_detail,
                                field="X-Consistency-Token")  # fmt: skip
    code = next(code for kind, code in _CODES if isinstance(exc, kind))
    retry_after = max(1, math.ceil(exc.retry_after or 1))
    return problem_response(503, code, exc.public_detail, headers={"Retry-After": str(retry_after)})


def answered(exc: ResilienceError) -> HttpResponseBase:
    """`error_response(exc)`, and the failure's full text in a throttled warning."""
    _log(exc)
    return error_response(exc)


def _log(exc: ResilienceError) -> None:
    key = (type(exc), exc.public_detail)
    throttle = _throttles.get(key)
    if throttle is None:
        if len(_throttles) > 1000:  # details name dependencies: few, unless a bug makes many
            _throttles.clear()
        throttle = _throttles[key] = Throttle(LOG_INTERVAL)
    answered_count = throttle.count()
    if answered_count:
        logger.warning(
            "answered 503: %s (%d such answers since the last warning)", exc, answered_count,
            extra={"error": str(exc), "error_type": type(exc).__name__,
                   "answered": answered_count},
        )  # fmt: skip


def answers_resilience_errors(view: View) -> View:
    """Decorate an async view so a `ResilienceError` becomes its answer, never a 500."""

    @functools.wraps(view)
    async def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        try:
            return await view(request, *args, **kwargs)
        except ResilienceError as exc:
            return answered(exc)

    return wrapped
