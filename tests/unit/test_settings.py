"""Settings from the environment: typed readers, and start-up errors naming the variable."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from project.env import Env

REPO = Path(__file__).resolve().parents[2]

# Every variable the settings read, by prefix or name: removed so the host's env cannot leak in.
_SETTINGS_PREFIXES = (
    "DJANGO_",
    "DATABASE_",
    "REDIS_",
    "BROKER_",
    "TIPS_",
    "UPSTREAM_",
    "HEALTH_",
    "SHUTDOWN_",
    "LOG_",
    "GC_",
    "ADMIN_",
)
_SETTINGS_NAMES = {
    "ACCESS_LOG",
    "SERVICE_NAME",
    "PROMETHEUS_MULTIPROC_DIR",
    "CACHE_STALE_BUDGET",
    "MAX_REQUEST_BODY",
    "METRICS_ENABLED",
    "MAX_IN_FLIGHT_REQUESTS",
    "CSRF_TRUSTED_ORIGINS",
    "STATIC_ROOT",
}

DEPLOYMENT = {
    "DJANGO_ALLOWED_HOSTS": "api.example.com",
    "DJANGO_SECRET_KEY": "a-real-secret",
    "DATABASE_URL": "postgresql://app@db.example.com:5432/app",
    "REDIS_URL": "redis://cache.example.com:6379/0",
    "TIPS_UPSTREAM_URL": "http://tips.example.com",
}


def clean_environ(**overrides: str) -> dict[str, str]:
    environ = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(_SETTINGS_PREFIXES) and name not in _SETTINGS_NAMES
    }
    environ["DJANGO_SETTINGS_MODULE"] = "project.settings"
    environ.update(overrides)
    return environ


def run_settings(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=clean_environ(**env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def setup_django(**env: str) -> subprocess.CompletedProcess[str]:
    return run_settings("import django; django.setup()", **env)


def import_settings(**env: str) -> subprocess.CompletedProcess[str]:
    """Only the settings module: every settings error is raised while it is imported."""
    return run_settings("import project.settings", **env)


def last_line(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def test_local_defaults_start() -> None:
    """With no settings variables at all the loopback defaults start Django."""
    result = setup_django()
    assert result.returncode == 0, result.stderr


def test_the_web_process_collects_with_its_threshold_and_start_up_frozen() -> None:
    """`project.asgi` (what uvicorn imports) tunes the collector last: GC_GEN0_THRESHOLD, or
    10,000 by default, and everything built at start-up out of later collections."""
    code = "import gc, project.asgi; print(gc.get_threshold()[0], gc.get_freeze_count() > 0)"
    default = run_settings(code)
    chosen = run_settings(code, GC_GEN0_THRESHOLD="2500")
    refused = run_settings(code, GC_GEN0_THRESHOLD="0")

    assert (default.returncode, default.stdout.split()) == (0, ["10000", "True"]), default.stderr
    assert chosen.stdout.split() == ["2500", "True"], chosen.stderr
    assert last_line(refused.stderr).endswith("GC_GEN0_THRESHOLD must be >= 1, got 0")


def test_non_loopback_host_requires_deployment_variables() -> None:
    """Serving a public host without the deployment variables fails naming each of them."""
    result = import_settings(DJANGO_ALLOWED_HOSTS="api.example.com")

    assert result.returncode != 0
    error = last_line(result.stderr)
    assert error.startswith("django.core.exceptions.ImproperlyConfigured: ")
    for name in ("DJANGO_SECRET_KEY", "DATABASE_URL", "REDIS_URL", "TIPS_UPSTREAM_URL"):
        assert name in error
    assert "api.example.com" in error


def test_missing_deployment_variables_are_the_only_ones_named() -> None:
    """Only the deployment variables still missing are named."""
    partial = {k: v for k, v in DEPLOYMENT.items() if k not in {"REDIS_URL", "TIPS_UPSTREAM_URL"}}
    result = import_settings(**partial)

    assert result.returncode != 0
    error = last_line(result.stderr)
    assert "REDIS_URL, TIPS_UPSTREAM_URL must be set" in error
    assert "DJANGO_SECRET_KEY" not in error
    assert "DATABASE_URL" not in error


def test_deployment_with_every_variable_starts() -> None:
    """A public host with every deployment variable set starts Django."""
    result = setup_django(**DEPLOYMENT)
    assert result.returncode == 0, result.stderr


def test_debug_does_not_require_deployment_variables() -> None:
    """DJANGO_DEBUG on a public host is a development setup: nothing more is required."""
    result = setup_django(DJANGO_ALLOWED_HOSTS="api.example.com", DJANGO_DEBUG="true")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DATABASE_MAX_REPLICA_LAG", "abc"),
        ("DATABASE_CONNECT_TIMEOUT", "-1"),
        ("DJANGO_DEBUG", "maybe"),
        ("DATABASE_POOL_MAX_SIZE", "0"),
        ("LOG_LEVEL", "loud"),
        ("ACCESS_LOG", "sometimes"),
        ("SHUTDOWN_TIMEOUT", "nan"),
        ("CACHE_STALE_BUDGET", "soon"),
        ("MAX_REQUEST_BODY", "0"),
        ("ADMIN_ENABLED", "perhaps"),
        ("UPSTREAM_HEDGE_PERCENTILE", "1"),
        ("UPSTREAM_HEDGE_MIN_DELAY", "9"),
    ],
)
def test_invalid_value_fails_naming_the_variable(name: str, value: str) -> None:
    """A malformed setting stops start-up with an ImproperlyConfigured naming the variable."""
    result = import_settings(**{name: value})

    assert result.returncode != 0
    error = last_line(result.stderr)
    assert error.startswith("django.core.exceptions.ImproperlyConfigured: "), result.stderr
    assert name in error


@pytest.mark.parametrize(("raw", "budget"), [("", "0.15"), ("0", "0.0"), ("0.5", "0.5"),
                                             ("off", "None"), ("OFF", "None")])  # fmt: skip
def test_the_stale_budget_is_seconds_or_off(raw: str, budget: str) -> None:
    """CACHE_STALE_BUDGET: seconds (0.15 by default), or off (every request waits)."""
    result = run_settings("from project import settings; print(settings.CACHE_STALE_BUDGET)",
                          CACHE_STALE_BUDGET=raw)  # fmt: skip
    assert result.stdout.strip() == budget, result.stderr


def test_multi_host_database_url_becomes_django_database() -> None:
    """A libpq multi-host URL keeps its host and port lists and passes extra parameters on."""
    code = (
        "import json, django; django.setup(); from django.conf import settings; "
        "print(json.dumps(settings.DATABASES['default']))"
    )
    url = "postgresql://app:pw@h1:5433,h2:5434/appdb?target_session_attrs=read-write"
    result = run_settings(code, DATABASE_URL=url, DATABASE_CONNECT_TIMEOUT="3")

    assert result.returncode == 0, result.stderr
    database: dict[str, Any] = json.loads(result.stdout)
    assert database["ENGINE"] == "django.db.backends.postgresql"
    assert database["NAME"] == "appdb"
    assert database["USER"] == "app"
    assert database["PASSWORD"] == "pw"
    assert database["HOST"] == "h1,h2"
    assert database["PORT"] == "5433,5434"
    assert database["OPTIONS"] == {"connect_timeout": 3, "target_session_attrs": "read-write"}


_APPS_AND_MIDDLEWARE = (
    "import json, django; django.setup(); from django.conf import settings; "
    "print(json.dumps([settings.INSTALLED_APPS, settings.MIDDLEWARE, "
    "settings.SESSION_COOKIE_SECURE]))"
)


def test_the_admin_is_off_unless_enabled() -> None:
    """Off: the service's apps and middleware alone. On: the admin's apps and its middleware
    (project.admin.middleware.py), and Django's system checks for the admin pass."""
    off = run_settings(_APPS_AND_MIDDLEWARE)
    on = run_settings(_APPS_AND_MIDDLEWARE, ADMIN_ENABLED="1")
    checked = run_settings(
        "import django; from django.core.management import call_command; django.setup(); "
        "call_command('check', fail_level='WARNING')",
        ADMIN_ENABLED="1",
    )

    assert off.returncode == 0, off.stderr
    apps, middleware, _ = json.loads(off.stdout)
    assert apps == ["app", "project", "workers"]
    assert [m.rsplit(".", 1)[-1] for m in middleware] == [
        "request_context_middleware", "security_middleware",
    ]  # fmt: skip
    apps, middleware, secure_cookies = json.loads(on.stdout)
    assert {
        "project.admin.apps.AdminConfig",
        "django.contrib.auth",
        "django.contrib.sessions",
    } <= set(apps)
    assert middleware[2:] == [
        f"project.admin.middleware.{name}"
        for name in (
            "SessionMiddleware",
            "CsrfViewMiddleware",
            "AuthenticationMiddleware",
            "MessageMiddleware",
        )
    ]
    assert secure_cookies is False  # loopback: plain http
    assert checked.returncode == 0, checked.stderr


def test_beyond_loopback_the_admins_cookies_are_https_only() -> None:
    """A deployment's admin sends its session and CSRF cookies over HTTPS only."""
    result = run_settings(_APPS_AND_MIDDLEWARE, ADMIN_ENABLED="1", **DEPLOYMENT)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)[2] is True


# --- project.env.Env, directly ------------------------------------------------------------


def test_str_defaults_when_unset_or_blank() -> None:
    """str returns the stripped value, or the default when unset or blank."""
    env = Env({"A": "  value ", "B": "   "})
    assert env.str("A", "d") == "value"
    assert env.str("B", "d") == "d"
    assert env.str("C", "d") == "d"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", True),
        ("true", True),
        (" Yes ", True),
        ("ON", True),
        ("0", False),
        ("false", False),
        ("no", False),
        ("off", False),
        ("", False),
    ],
)
def test_bool_parses_common_spellings(raw: str, expected: bool) -> None:
    """bool accepts 1/0, true/false, yes/no, on/off in any case; empty is false."""
    assert Env({"FLAG": raw}).bool("FLAG", not expected) is expected


def test_bool_defaults_when_unset_and_names_variable_on_error() -> None:
    """bool returns the default when unset and names the variable for an unknown word."""
    assert Env({}).bool("FLAG", True) is True
    with pytest.raises(ImproperlyConfigured, match=r"^FLAG must be a boolean .* got 'maybe'$"):
        Env({"FLAG": "maybe"}).bool("FLAG", False)


def test_int_parses_defaults_and_bounds() -> None:
    """int parses, defaults when blank, and rejects non-integers and values below min_value."""
    env = Env({"N": " 42 ", "BLANK": "", "BAD": "4.2", "ZERO": "0"})
    assert env.int("N", 1) == 42
    assert env.int("BLANK", 7) == 7
    assert env.int("MISSING", 7) == 7
    with pytest.raises(ImproperlyConfigured, match=r"^BAD must be an integer, got '4.2'$"):
        env.int("BAD", 1)
    with pytest.raises(ImproperlyConfigured, match=r"^ZERO must be >= 1, got 0$"):
        env.int("ZERO", 1, min_value=1)
    with pytest.raises(ImproperlyConfigured, match=r"^N must be >= 0, got -3$"):
        Env({"N": "-3"}).int("N", 1)


def test_seconds_parses_fractions_and_rejects_bad_values() -> None:
    """seconds accepts non-negative fractions and names the variable for anything else."""
    env = Env({"T": "0.25", "ZERO": "0"})
    assert env.seconds("T", 1.0) == 0.25
    assert env.seconds("ZERO", 1.0) == 0.0
    assert env.seconds("MISSING", 1.5) == 1.5
    with pytest.raises(ImproperlyConfigured, match=r"^T must be a number of seconds, got 'abc'$"):
        Env({"T": "abc"}).seconds("T", 1.0)
    for bad in ("-0.5", "nan", "-inf"):
        with pytest.raises(ImproperlyConfigured, match=r"^T must be a non-negative number"):
            Env({"T": bad}).seconds("T", 1.0)


def test_seconds_accepts_infinity() -> None:
    """An infinite duration is non-negative and is accepted as such."""
    assert math.isinf(Env({"T": "inf"}).seconds("T", 1.0))


def test_list_splits_strips_and_defaults() -> None:
    """list splits on commas, drops blanks and falls back to the default when nothing is left."""
    env = Env({"HOSTS": " a.example.com, ,b.example.com ,", "EMPTY": " , "})
    assert env.list("HOSTS", ["x"]) == ["a.example.com", "b.example.com"]
    assert env.list("EMPTY", ["x"]) == ["x"]
    assert env.list("MISSING", []) == []


def test_choice_is_case_insensitive_and_names_variable_on_error() -> None:
    """choice lower-cases the value and rejects values outside the choices, naming them."""
    choices = ("debug", "info")
    assert Env({"LEVEL": "DEBUG"}).choice("LEVEL", "info", choices) == "debug"
    assert Env({}).choice("LEVEL", "info", choices) == "info"
    with pytest.raises(
        ImproperlyConfigured, match=r"^LEVEL must be one of debug, info, got 'loud'$"
    ):
        Env({"LEVEL": "loud"}).choice("LEVEL", "info", choices)


def test_required_names_every_missing_variable_in_order() -> None:
    """required names every unset or blank variable, in the order asked, with the reason."""
    env = Env({"A": "1", "B": " ", "D": "x"})
    env.required(["A", "D"], why="for tests")
    with pytest.raises(ImproperlyConfigured, match=r"^B, C must be set for tests$"):
        env.required(["A", "B", "C", "D"], why="for tests")


def test_is_set_ignores_blank_values() -> None:
    """is_set is false for unset and whitespace-only variables."""
    env = Env({"A": "x", "B": "  "})
    assert env.is_set("A")
    assert not env.is_set("B")
    assert not env.is_set("C")
