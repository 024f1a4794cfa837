"""The admin's middleware acts on the admin's paths alone: the API keeps its thread-free,
cookie-free path when the admin is on."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path

from resilience_async.django import EventLoopASGIHandler
from tests.unit.test_handler import client_for, count_hand_offs

ADMIN_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
]
ADMIN_MIDDLEWARE = [
    "project.admin.middleware.SessionMiddleware",
    "project.admin.middleware.CsrfViewMiddleware",
    "project.admin.middleware.AuthenticationMiddleware",
    "project.admin.middleware.MessageMiddleware",
]
seen: dict[str, Any] = {}


async def api(request: HttpRequest) -> HttpResponse:
    seen["api"] = {"session": hasattr(request, "session"), "user": hasattr(request, "user")}
    return HttpResponse(b'{"ok":true}', content_type="application/json")


def admin_page(request: HttpRequest) -> JsonResponse:
    seen["admin_thread"] = threading.current_thread()
    return JsonResponse(
        {"anonymous": request.user.is_anonymous, "session": hasattr(request, "session")}
    )


urlpatterns = [
    path("api/things", api),
    path(f"{django_settings.ADMIN_URL}page", admin_page),
]


@pytest.fixture(autouse=True)
def _admin_on(settings: Any) -> None:
    """The settings ADMIN_ENABLED makes (the apps and middleware), with this module's URLs."""
    settings.INSTALLED_APPS = [*settings.INSTALLED_APPS, *ADMIN_APPS]
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, *ADMIN_MIDDLEWARE]
    settings.ROOT_URLCONF = __name__
    seen.clear()


async def test_api_requests_pass_the_admins_middleware_on_the_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the admin's middleware installed, API answers (200, 404) start no thread."""
    async with client_for(EventLoopASGIHandler()) as client:
        await client.get("/api/things")
        with count_hand_offs(monkeypatch) as counts:
            statuses = [(await client.get(p)).status_code for p in ["/api/things", "/nowhere"] * 50]
    assert statuses == [200, 404] * 50
    assert counts == {"threads": 0, "executor": 0}
    assert seen["api"] == {"session": False, "user": False}


async def test_api_writes_are_not_asked_for_a_csrf_token() -> None:
    """A cookie-less POST to the API is served; the same POST to the admin is refused."""
    async with client_for(EventLoopASGIHandler()) as client:
        api_post = await client.post("/api/things", content=b"{}")
        admin_post = await client.post("/admin/page", content=b"{}")
    assert api_post.status_code == 200
    assert admin_post.status_code == 403
    assert b"CSRF" in admin_post.content
    assert "admin_thread" not in seen  # refused before the view


async def test_admin_requests_get_a_session_and_a_user_in_their_thread() -> None:
    """Under ADMIN_URL Django's middleware runs: a session, a user, the sync view's thread."""
    async with client_for(EventLoopASGIHandler()) as client:
        response = await client.get("/admin/page")
    assert response.status_code == 200
    assert response.json() == {"anonymous": True, "session": True}
    assert seen["admin_thread"] is not threading.main_thread()  # a sync view, in its thread
