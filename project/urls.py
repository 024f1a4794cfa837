"""Routes of the service; the library's views get what they need from the settings here.

The Django admin is routed at ADMIN_URL only when ADMIN_ENABLED (project/admin/).
"""

from __future__ import annotations

from django.conf import settings
from django.urls import path

from project.resources import for_process
from resilience_async.django import live, metrics_view, readiness_view

# An unexpected failure answers problem details too (and is logged as an ERROR).
handler500 = "resilience_async.django.server_error"

resources = for_process()
api = resources.api

urlpatterns = [
    path("health/live", live, name="health-live"),
    path(
        "health/ready",
        readiness_view(resources.readiness, health_token=settings.HEALTH_TOKEN),
        name="health-ready",
    ),
    path(
        "metrics",
        metrics_view(multiprocess_dir=settings.METRICS_MULTIPROC_DIR, token=settings.METRICS_TOKEN),
        name="metrics",
    ),
    path("api/openapi.json", api.openapi, name="openapi"),
    path("api/docs", resources.docs.page, name="docs"),
    path("api/docs/<str:name>", resources.docs.asset, name="docs-asset"),
    path("api/tips", api.tips, name="tips"),
    path("api/orders", api.orders, name="orders"),
    path("api/orders/<int:order_id>", api.order, name="order"),
    path("api/reports", api.reports, name="reports"),
    path("api/reports/<uuid:report_id>", api.report, name="report"),
]

if settings.ADMIN_ENABLED:
    from django.contrib import admin  # loaded only when the admin is on

    from project.admin.site import static_file

    urlpatterns += [
        path(settings.ADMIN_URL, admin.site.urls),
        path(f"{settings.STATIC_URL.lstrip('/')}<path:path>", static_file, name="static"),
    ]
