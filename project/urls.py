"""Routes of the service (the sync twin's routes live in `app/urls_sync.py`)."""

from __future__ import annotations

from django.urls import path

from app import views
from project import resources
from resilience_async.django import views as health


def _readiness():
    installed = resources.current()
    return installed.readiness if installed is not None else None


urlpatterns = [
    path("health/live", health.live, name="health-live"),
    path("health/ready", health.readiness_view(_readiness), name="health-ready"),
    path("metrics", health.metrics_view, name="metrics"),
    path("api/tips", views.tips, name="tips"),
    path("api/orders", views.orders, name="orders"),
    path("api/orders/<int:order_id>", views.order, name="order"),
    path("api/reports", views.reports, name="reports"),
    path("api/reports/<uuid:report_id>", views.report, name="report"),
]
