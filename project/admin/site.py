"""The service's admin site, and the admin's static files.

The admin's pages are sync views on Django's ORM, which a request reaches through its own
connection to the primary. When that cannot be reached (the primary down, between a
failover and its promotion), a page answers 503 with `Retry-After`, as the API does, not a
500 with a traceback in the log.
"""

from __future__ import annotations

import logging
import mimetypes
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import admin
from django.contrib.staticfiles import finders
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.views.decorators.http import require_safe

from resilience_async.django import problem_response

logger = logging.getLogger(__name__)

# What a browser may keep of a static file (the admin's names carry no hash: an hour).
STATIC_MAX_AGE = 3600
# Seconds an admin page asks to be retried after when the database cannot be reached.
RETRY_AFTER = 5
UNREACHABLE = (OperationalError, InterfaceError)


class ServiceAdminSite(admin.AdminSite):
    """Django's admin site, answering 503 while the database cannot be reached."""

    site_header = "resilient-django"
    site_title = "resilient-django admin"

    def admin_view(self, view: Callable[..., Any], cacheable: bool = False) -> Callable[..., Any]:
        return answering_unavailable(super().admin_view(view, cacheable))

    def login(self, request: HttpRequest, extra_context: Any = None) -> HttpResponseBase:
        return answering_unavailable(super().login)(request, extra_context)


def answering_unavailable(view: Callable[..., HttpResponseBase]) -> Callable[..., Any]:
    """`view`, answering 503 + Retry-After when the database cannot be reached."""

    @wraps(view)
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        try:
            return view(request, *args, **kwargs)
        except UNREACHABLE as exc:
            logger.warning("admin: the database could not be reached: %s", exc)
            return problem_response(503, "database_unavailable",
                                    "the database could not be reached",
                                    headers={"Retry-After": str(RETRY_AFTER)})  # fmt: skip

    return guarded


@require_safe
def static_file(request: HttpRequest, path: str) -> HttpResponse:
    """One of the installed apps' static files (the admin's CSS, JavaScript and images).

    A sync view (Django runs it in a thread): a file read blocks. The files are small and
    few; a deployment that wants them off the app runs `manage.py collectstatic` and lets a
    web server in front answer STATIC_URL.
    """
    found = finders.find(path)
    if not isinstance(found, str):
        raise Http404(path)
    with open(found, "rb") as file:
        body = file.read()
    content_type, encoding = mimetypes.guess_type(found)
    response = HttpResponse(body, content_type=content_type or "application/octet-stream")
    if encoding:
        response["Content-Encoding"] = encoding
    response["Cache-Control"] = f"max-age={STATIC_MAX_AGE}"
    return response
