"""Routes of the sync twin: the same paths as `project/urls.py`, served by its sync views."""

from __future__ import annotations

from django.urls import path

from loadtests.twin import views

urlpatterns = [
    path("health/live", views.live, name="health-live"),
    path("api/tips", views.tips, name="tips"),
    path("api/orders", views.orders, name="orders"),
    path("api/orders/<int:order_id>", views.order, name="order"),
    path("api/reports", views.reports, name="reports"),
    path("api/reports/<uuid:report_id>", views.report, name="report"),
]
