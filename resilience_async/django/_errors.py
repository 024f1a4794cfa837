"""The one mapping of `resilience_async`'s errors to HTTP answers, for async views."""

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
from resilience_async.django._responses import json_error

# Named as it was before the module turned private: log configurations keep working.
logger = logging.getLogger("resilience_async.django.errors")

View = Callable[..., Awaitable[HttpResponseBase]]

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


def error_response(exc: ResilienceError) -> HttpResponseBase:
    """503 with a `Retry-After` (whole seconds, at least 1) and the error named in the body;
    400 for the one caller's mistake in the tree, a malformed consistency token."""
    if isinstance(exc, InvalidLsnError):
        return json_error(400, "invalid_consistency_token", str(exc))
    code = next(code for kind, code in _CODES if isinstance(exc, kind))
    retry_after = max(1, math.ceil(exc.retry_after or 1))
    return json_error(503, code, str(exc), headers={"Retry-After": str(retry_after)})


def answered(exc: ResilienceError) -> HttpResponseBase:
    """`error_response(exc)`, logged once here (Django's own 5xx log then skips it)."""
    logger.warning("resilience error answered", extra={"error": str(exc)})
    response = error_response(exc)
    # Django's log_response skips a response marked so.
    response._has_been_logged = True  # type: ignore[attr-defined]
    return response


def answers_resilience_errors(view: View) -> View:
    """Decorate an async view so a `ResilienceError` becomes its answer, never a 500."""

    @functools.wraps(view)
    async def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        try:
            return await view(request, *args, **kwargs)
        except ResilienceError as exc:
            return answered(exc)

    return wrapped
