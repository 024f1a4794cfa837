"""The sync twin: the same API done the guide's way (sync views), for the benchmark."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse


def live(request: HttpRequest) -> JsonResponse:
    """200 while the process answers; touches no dependency."""
    return JsonResponse({"status": "pass"}, content_type="application/health+json")
