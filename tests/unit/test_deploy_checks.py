"""`manage.py check --deploy` passes with a deployment's settings and fails on a weak one; the
checks standing in for the ones settings.py silences (project/deploy_checks.py) still catch
what those caught; and the headers they trust the service's middleware for are sent."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.core.checks import Tags, run_checks
from django.http import HttpRequest, HttpResponse
from django.test import override_settings
from django.urls import path
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from resilience_async.django import EventLoopASGIHandler

REPO = Path(__file__).resolve().parents[2]
# What project/settings.py requires to serve a host that is not loopback, and nothing else.
DEPLOYMENT = {
    "DJANGO_ALLOWED_HOSTS": "api.example.com",
    "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
    "DATABASE_URL": "postgresql://app@db.example.com:5432/app",
    "REDIS_URL": "redis://cache.example.com:6379/0",
    "TIPS_UPSTREAM_URL": "https://tips.example.com",
}


def check_deploy(**env: str) -> subprocess.CompletedProcess[str]:
    """`manage.py check --deploy --fail-level WARNING` in an environment of `env` alone."""
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_deployment_passes_the_deploy_checks_with_no_warning() -> None:
    result = check_deploy(**DEPLOYMENT)
    assert result.returncode == 0, result.stderr
    assert "WARNING" not in result.stdout + result.stderr
    assert "System check identified no issues (3 silenced)." in result.stdout


def test_a_deployment_with_the_admin_passes_them_too() -> None:
    """ADMIN_ENABLED: sessions installed, and the admin's CSRF middleware (Django's, kept to
    its URLs) counts as CSRF protection."""
    result = check_deploy(**DEPLOYMENT, ADMIN_ENABLED="1")
    assert result.returncode == 0, result.stderr
    assert "WARNING" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("weakened", "check"),
    [
        ({"DJANGO_DEBUG": "1"}, "security.W018"),
        ({"DJANGO_SECRET_KEY": "short-and-guessable"}, "security.W009"),
        ({"DJANGO_SECURE_HSTS_SECONDS": "0"}, "project.W004"),
    ],
    ids=["debug", "short-secret", "no-hsts"],
)
def test_a_weakened_deployment_fails_them(weakened: dict[str, str], check: str) -> None:
    result = check_deploy(**(DEPLOYMENT | weakened))
    assert result.returncode == 1
    assert f"({check})" in result.stderr, result.stderr


def deploy_warnings() -> list[str]:
    """The ids of what the security deploy checks say under the current settings."""
    messages = run_checks(tags=[Tags.security], include_deployment_checks=True)
    return sorted(message.id for message in messages if not message.is_silenced())


SESSIONS = "django.contrib.sessions.middleware.SessionMiddleware"
CSRF = "django.middleware.csrf.CsrfViewMiddleware"
OURS = [
    "resilience_async.django.request_context_middleware",
    "resilience_async.django.security_middleware",
]


@pytest.mark.parametrize(
    ("middleware", "expected"),
    [
        (OURS, []),
        (OURS[:1], ["project.W001"]),  # no security headers at all
        # Django's does the job too: then Django's own checks of its settings take over.
        (
            ["django.middleware.security.SecurityMiddleware"],
            ["security.W005", "security.W008", "security.W021"],
        ),
        ([*OURS, SESSIONS], ["project.W003"]),  # sessions (the admin) and no CSRF
        ([*OURS, SESSIONS, CSRF], []),
    ],
    ids=["ours", "no-security-headers", "django-security", "sessions", "sessions-and-csrf"],
)
def test_the_stand_in_checks_catch_what_the_silenced_ones_did(
    middleware: list[str], expected: list[str]
) -> None:
    with override_settings(MIDDLEWARE=middleware, SECURE_HSTS_SECONDS=3600, DEBUG=False,
                           SESSION_COOKIE_SECURE=True, CSRF_COOKIE_SECURE=True):  # fmt: skip
        assert deploy_warnings() == expected


def test_header_settings_turned_off_are_caught() -> None:
    with override_settings(SECURE_HSTS_SECONDS=0, SECURE_CONTENT_TYPE_NOSNIFF=False):
        assert {"project.W004", "project.W006"} <= set(deploy_warnings())


# --- the headers themselves, as served behind a TLS-terminating proxy ------------------------


async def plain(request: HttpRequest) -> HttpResponse:
    return HttpResponse(b"{}", content_type="application/json")


urlpatterns = [path("plain", plain)]


@pytest.fixture
def hsts(settings: Any) -> None:
    settings.ROOT_URLCONF = __name__
    settings.SECURE_HSTS_SECONDS = 31536000


async def headers_seen(client: tuple[str, int], **sent: str) -> httpx.Headers:
    """The headers of an answer served as uvicorn serves it (its proxy-headers middleware in
    front, trusting 127.0.0.1, its default) to a request from `client`."""
    app = ProxyHeadersMiddleware(EventLoopASGIHandler(), trusted_hosts="127.0.0.1")
    transport = httpx.ASGITransport(app=app, client=client)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        response = await http.get("/plain", headers=sent)
    assert response.status_code == 200
    return response.headers


@pytest.mark.usefixtures("hsts")
async def test_security_headers_and_hsts_over_https_through_a_trusted_proxy() -> None:
    """The proxy says the client came over TLS: HSTS is added, with the other headers that
    stand in for Django's SecurityMiddleware and XFrameOptionsMiddleware."""
    headers = await headers_seen(("127.0.0.1", 40000), **{"X-Forwarded-Proto": "https"})
    assert headers["Strict-Transport-Security"] == "max-age=31536000"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin"
    assert headers["Cross-Origin-Opener-Policy"] == "same-origin"


@pytest.mark.usefixtures("hsts")
@pytest.mark.parametrize(
    ("client", "sent"),
    [(("127.0.0.1", 40000), {}), (("203.0.113.9", 40000), {"X-Forwarded-Proto": "https"})],
    ids=["plain-http", "untrusted-client-claiming-https"],
)
async def test_no_hsts_over_plain_http(client: tuple[str, int], sent: dict[str, str]) -> None:
    """Over plain HTTP (or a client's own claim of HTTPS, not its proxy's) HSTS means
    nothing and is left out; the other headers are there."""
    headers = await headers_seen(client, **sent)
    assert "Strict-Transport-Security" not in headers
    assert headers["X-Frame-Options"] == "DENY"
