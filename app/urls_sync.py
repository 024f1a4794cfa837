"""Routes of the sync twin: the same paths as `project/urls.py`, served by sync views."""

from __future__ import annotations

from django.urls import path

from app import views_sync

urlpatterns = [
    path("health/live", views_sync.live, name="health-live"),
    path("api/tips", views_sync.tips, name="tips"),
    path("api/orders", views_sync.orders, name="orders"),
    path("api/orders/<int:order_id>", views_sync.order, name="order"),
    path("api/reports", views_sync.reports, name="reports"),
    path("api/reports/<uuid:report_id>", views_sync.report, name="report"),
]
