"""Django system checks (`manage.py check --deploy`) standing in for the ones settings.py
silences: the guarantee each of Django's gave is still checked, the way this service keeps it.

Django's security.W001/W002 ask for its `SecurityMiddleware` and `XFrameOptionsMiddleware`;
the service sets the same headers with `resilience_async.django.security_middleware` (on the
event loop, no thread hand-off per request), so W001/W002 are silenced and `project.W001`
asks for that middleware instead. Without Django's `SecurityMiddleware` Django skips its
HSTS and nosniff checks (W004, W006): `project.W004` and `project.W006` check the settings
the service's middleware reads. security.W003 asks for `CsrfViewMiddleware`, which guards
cookie-authenticated requests only: the API takes no cookies (writes will take
`Authorization: Bearer` keys, which a browser never adds by itself), so W003 is silenced and
`project.W003` asks for CSRF as soon as sessions are installed (the Django admin).

Registered by `project.apps.ProjectConfig.ready()`; read at check time, so they see the
settings whatever built them (an admin added later in settings.py, a test's override).
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.checks import CheckMessage, Tags, register
from django.core.checks import Warning as CheckWarning
from django.utils.module_loading import import_string

SECURITY_MIDDLEWARE = "resilience_async.django.security_middleware"
DJANGO_SECURITY_MIDDLEWARE = "django.middleware.security.SecurityMiddleware"
CSRF_MIDDLEWARE = "django.middleware.csrf.CsrfViewMiddleware"
SESSION_MIDDLEWARE = "django.contrib.sessions.middleware.SessionMiddleware"

W001 = CheckWarning(
    f"Neither {SECURITY_MIDDLEWARE} nor Django's SecurityMiddleware is in MIDDLEWARE: "
    "answers carry no X-Frame-Options, X-Content-Type-Options, Referrer-Policy or HSTS.",
    hint=f"Add {SECURITY_MIDDLEWARE} to MIDDLEWARE (it stands in for security.W001/W002).",
    id="project.W001",
)
W003 = CheckWarning(
    f"Sessions are installed but {CSRF_MIDDLEWARE} is not in MIDDLEWARE: requests "
    "authenticated by a cookie can be forged from another site.",
    hint=f"Add {CSRF_MIDDLEWARE} to MIDDLEWARE wherever sessions are (the admin).",
    id="project.W003",
)
W004 = CheckWarning(
    "SECURE_HSTS_SECONDS is 0: answers over HTTPS carry no Strict-Transport-Security, so a "
    "browser may reach this host over plain HTTP again.",
    hint="Set DJANGO_SECURE_HSTS_SECONDS (a deployment's default is a year).",
    id="project.W004",
)
W006 = CheckWarning(
    "SECURE_CONTENT_TYPE_NOSNIFF is off: answers carry no X-Content-Type-Options: nosniff.",
    id="project.W006",
)


def _security_headers_set() -> bool:
    middleware = settings.MIDDLEWARE
    return SECURITY_MIDDLEWARE in middleware or DJANGO_SECURITY_MIDDLEWARE in middleware


@register(Tags.security, deploy=True)
def security_middleware_installed(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    """project.W001, for security.W001 and W002 (silenced)."""
    return [] if _security_headers_set() else [W001]


@register(Tags.security, deploy=True)
def csrf_where_sessions_are(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    """project.W003, for security.W003 (silenced) where a cookie can authenticate."""
    sessions = apps.is_installed("django.contrib.sessions") or _installed(SESSION_MIDDLEWARE)
    return [W003] if sessions and not _installed(CSRF_MIDDLEWARE) else []


def _installed(class_path: str) -> bool:
    """Whether MIDDLEWARE has `class_path`, or a subclass of it (the admin's own, which act
    on its URLs only: project/admin/middleware.py), as Django's admin checks look."""
    if class_path in settings.MIDDLEWARE:
        return True
    wanted = import_string(class_path)
    for path in settings.MIDDLEWARE:
        try:
            candidate = import_string(path)
        except (ImportError, RuntimeError):  # RuntimeError: a model of an app not installed
            continue
        if isinstance(candidate, type) and issubclass(candidate, wanted):
            return True
    return False


@register(Tags.security, deploy=True)
def security_headers_configured(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    """project.W004 and W006: what Django checks only under its own SecurityMiddleware."""
    if not _security_headers_set():
        return []  # project.W001 says it
    found = [] if settings.SECURE_HSTS_SECONDS else [W004]
    return found if settings.SECURE_CONTENT_TYPE_NOSNIFF else [*found, W006]
