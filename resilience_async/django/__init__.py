"""The Django adapter: the only part of `resilience_async` that imports Django.

Everything public is importable from here, and only from here is it promised:

    from resilience_async.django import EventLoopASGIHandler, live, readiness_view

_handler.py      `EventLoopASGIHandler`: Django's ASGI handler without a thread per request
_admission.py    load shedding at the door (MAX_IN_FLIGHT_REQUESTS), used by the handler
_middleware.py   `request_context_middleware` (request id, access log, request metrics) and
                 `security_middleware` (Host check, security headers); Django builds them
                 from dotted paths: `"resilience_async.django.security_middleware"`
_views.py        `live`, `readiness_view(readiness, health_token=...)`,
                 `metrics_view(multiprocess_dir=...)`, `server_error` (for `handler500`)
_errors.py       `error_response`, `answered`, `answers_resilience_errors`: the one mapping
                 of `ResilienceError` to HTTP
_responses.py    `json_response`, `problem_response`, `method_not_allowed`: RFC 9457 errors
_signals.py      request signals sent without a thread hand-off
_headers.py      response headers written once checked

Settings it reads, each with a default (another Django project needs none of them):
`ACCESS_LOG` (False), `METRICS_ENABLED` (True), `MAX_IN_FLIGHT_REQUESTS` (0: no limit),
`MAX_IN_FLIGHT_WAIT` (0.0), `MAX_REQUEST_BODY` (None: Django's own reading), and Django's
own `DEBUG` and `SECURE_*`. What the views need comes from the caller, as arguments.
"""

from __future__ import annotations

from resilience_async import _extras

with _extras.extra_needed("resilience_async.django"):
    from resilience_async.django._errors import answered, answers_resilience_errors, error_response
    from resilience_async.django._handler import EventLoopASGIHandler
    from resilience_async.django._middleware import request_context_middleware, security_middleware
    from resilience_async.django._responses import (
        JSON,
        json_response,
        method_not_allowed,
        problem_response,
    )
    from resilience_async.django._views import (
        HEALTH_TOKEN_HEADER,
        live,
        metrics_view,
        readiness_view,
        server_error,
    )

__all__ = [
    "HEALTH_TOKEN_HEADER",
    "JSON",
    "EventLoopASGIHandler",
    "answered",
    "answers_resilience_errors",
    "error_response",
    "json_response",
    "live",
    "method_not_allowed",
    "metrics_view",
    "problem_response",
    "readiness_view",
    "request_context_middleware",
    "security_middleware",
    "server_error",
]

# As the package root does: reprs and tracebacks name the namespace people import.
for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("resilience_async.django."):
        _obj.__module__ = __name__
del _name, _obj
