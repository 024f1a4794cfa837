"""The async API: thin views that parse, call a service, and render."""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest, HttpResponse

from app import services
from resilience_async.django.errors import answers_resilience_errors
from resilience_async.django.responses import JSON, method_not_allowed


class _EncodedOnce:
    """The JSON of the last list served, kept while the same list object is served again.

    Cached, stale and fallback answers return the same list object request after request;
    encoding it measured as the largest single cost of the view (more than the cache and the
    breaker together), so it is encoded once per object.
    """

    def __init__(self) -> None:
        self._value: object = None
        self._encoded = b""

    def __call__(self, value: Any) -> bytes:
        if value is not self._value:
            self._encoded = json.dumps(value, separators=(",", ":")).encode()
            self._value = value
        return self._encoded


_encode_tips = _EncodedOnce()


@answers_resilience_errors
async def tips(request: HttpRequest) -> HttpResponse:
    """Tips from the upstream; `source` says whether they are live, cached, stale or a fallback."""
    rejected = method_not_allowed(request, "GET", "HEAD")
    if rejected is not None:
        return rejected
    result = await services.tips()
    body = b'{"tips":%s,"source":"%s"' % (_encode_tips(result.value), result.source.encode())
    headers = {}
    if result.source in ("cache", "stale"):
        body += b',"age":%.3f' % result.age
        headers["Age"] = str(int(result.age))  # RFC 9111: seconds since it was fetched
    return HttpResponse(body + b"}", content_type=JSON, headers=headers)
