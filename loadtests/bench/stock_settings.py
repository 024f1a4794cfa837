"""Baseline settings: this project's, served the stock way (Django's MiddlewareMixin classes).

Used only by the benchmark's stock-Django-ASGI server: same URLs and views, Django's own
middleware and handler, so the difference measured is the request path, not the view.
"""

from __future__ import annotations

from project.settings import *  # noqa: F403

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
]
