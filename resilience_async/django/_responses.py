"""JSON responses, and errors in the one shape of RFC 9457 problem details."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from django.http import HttpRequest, HttpResponse

from resilience_async._problem import MEDIA_TYPE as PROBLEM_JSON
from resilience_async._problem import problem_bytes

JSON = "application/json"


def json_response(
    data: Any,
    *,
    status: int = 200,
    content_type: str = JSON,
    headers: Mapping[str, str] | None = None,
) -> HttpResponse:
    body = json.dumps(data, separators=(",", ":"), default=str)
    return HttpResponse(body, status=status, content_type=content_type, headers=headers)


def problem_response(
    status: int,
    code: str,
    detail: str,
    *,
    field: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> HttpResponse:
    """An `application/problem+json` answer (`field`: the field, header or parameter it is
    about). It is an answer given on purpose, so Django's per-request log line skips it:
    `/metrics` counts it, and the access log shows it."""
    body = problem_bytes(status, code, detail, field=field)
    response = HttpResponse(body, status=status, content_type=PROBLEM_JSON, headers=headers)
    response._has_been_logged = True  # type: ignore[attr-defined]  # Django's log_response
    return response


def method_not_allowed(request: HttpRequest, *allowed: str) -> HttpResponse | None:
    """A 405 naming the allowed methods, or None when `request.method` is one of them."""
    if request.method in allowed:
        return None
    return problem_response(
        405,
        "method_not_allowed",
        f"{request.method} is not allowed here",
        headers={"Allow": ", ".join(allowed)},
    )
