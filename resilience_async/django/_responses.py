"""JSON responses in the service's one error shape: {"error": {"code", "message", "field"}}."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from django.http import HttpRequest, HttpResponse

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


def json_error(
    status: int,
    code: str,
    message: str,
    *,
    field: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> HttpResponse:
    error: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    return json_response({"error": error}, status=status, headers=headers)


def method_not_allowed(request: HttpRequest, *allowed: str) -> HttpResponse | None:
    """A JSON 405 naming the allowed methods, or None when `request.method` is one of them."""
    if request.method in allowed:
        return None
    return json_error(
        405,
        "method_not_allowed",
        f"{request.method} is not allowed here",
        headers={"Allow": ", ".join(allowed)},
    )
