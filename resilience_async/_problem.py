"""RFC 9457 problem details: the one shape of every error answer, framework-free.

    {"type": "/problems/not_found", "title": "Not found", "status": 404,
     "detail": "no order 7", "code": "not_found", "field": "..."}

`code` names the problem for programs (it is stable, and `type` is built from it); `title`
says it for people, the same every time; `detail` tells this occurrence, and never holds a
host, a port or a driver's message (those go to the log). `field`, when present, names the
body field, header or parameter the problem is about. `type` is a URI reference relative to
the service (RFC 9457 allows one): an identifier, not promised to resolve.

The bytes are built here, not through a framework, so the ready-made answers written before
any framework sees the request (the door's 503, the server's 408/413/431) share the shape.
"""

from __future__ import annotations

import json
from typing import Any

MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "/problems/"


def title_of(code: str) -> str:
    """The problem's title, made from its code: `payload_too_large` is "Payload too large"."""
    return code.replace("_", " ").capitalize()


def problem(status: int, code: str, detail: str, *, field: str | None = None) -> dict[str, Any]:
    """The problem details object for one answer (`field`: what it is about, if anything)."""
    body: dict[str, Any] = {
        "type": TYPE_PREFIX + code,
        "title": title_of(code),
        "status": status,
        "detail": detail,
        "code": code,
    }
    if field is not None:
        body["field"] = field
    return body


def problem_bytes(status: int, code: str, detail: str, *, field: str | None = None) -> bytes:
    """`problem(...)` encoded as compact UTF-8 JSON."""
    encoded = json.dumps(problem(status, code, detail, field=field), separators=(",", ":"))
    return encoded.encode()
