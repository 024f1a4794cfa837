"""Routes of the sync twin: the same paths as `project/urls.py`, served by sync views."""

from __future__ import annotations

from django.urls import path

from app import views_sync

urlpatterns = [
    path("health/live", views_sync.live, name="health-live"),
    path("api/tips", views_sync.tips, name="tips"),
]
