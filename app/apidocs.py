"""`/api/docs`: Swagger UI over the OpenAPI document, served from a package, never a CDN.

The files come from drf-spectacular-sidecar (Swagger UI's own dist, nothing of DRF), are
read once, on first use, and served with a day's caching. The page loads only this
service's own scripts and styles (a Content-Security-Policy says so), its start-up script
included, so no inline script is needed.
"""

from __future__ import annotations

import asyncio
from importlib import resources

from django.http import HttpRequest, HttpResponse

from resilience_async.django import method_not_allowed, problem_response

_DIST = "static/drf_spectacular_sidecar/swagger-ui-dist"
_ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui-standalone-preset.js": "text/javascript",
    "swagger-ui.css": "text/css",
}
_PAGE = b"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>resilient-django API</title>
<link rel="stylesheet" href="/api/docs/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/api/docs/swagger-ui-bundle.js"></script>
<script src="/api/docs/start.js"></script>
</body>
</html>
"""
_START = b"""window.ui = SwaggerUIBundle({
  url: "/api/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis],
});
"""
_CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'")  # fmt: skip
_CACHED = {"Cache-Control": "public, max-age=86400"}


class ApiDocs:
    """The page and its files."""

    def __init__(self) -> None:
        self._files: dict[str, bytes] = {"start.js": _START}
        self._lock = asyncio.Lock()

    async def page(self, request: HttpRequest) -> HttpResponse:
        rejected = method_not_allowed(request, "GET", "HEAD")
        if rejected is not None:
            return rejected
        return HttpResponse(_PAGE, content_type="text/html; charset=utf-8",
                            headers={"Content-Security-Policy": _CSP})  # fmt: skip

    async def asset(self, request: HttpRequest, name: str) -> HttpResponse:
        rejected = method_not_allowed(request, "GET", "HEAD")
        if rejected is not None:
            return rejected
        if name != "start.js" and name not in _ASSETS:
            return problem_response(404, "not_found", f"no file {name[:100]!r}")
        body = self._files.get(name)
        if body is None:
            async with self._lock:  # read once, off the loop: 1.6 MB from the package
                body = self._files.get(name) or await asyncio.to_thread(_read, name)
                self._files[name] = body
        return HttpResponse(body, content_type=_ASSETS.get(name, "text/javascript"),
                            headers=_CACHED)  # fmt: skip


def _read(name: str) -> bytes:
    return (resources.files("drf_spectacular_sidecar") / _DIST / name).read_bytes()
