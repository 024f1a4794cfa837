"""Every setting of the service, read from the environment here and nowhere else.

Defaults are safe for local use (loopback hosts, the local stack's ports). Serving any host
name that is not loopback makes this a deployment: then the variables a deployment needs
must be set, and start-up fails naming the ones that are missing.
"""

from __future__ import annotations

import os
import sys

from django.core.exceptions import ImproperlyConfigured
from psycopg.conninfo import conninfo_to_dict

from project.env import Env

env = Env(os.environ)

# --- Django core -------------------------------------------------------------------------
DEBUG = env.bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
LOCAL = all(host in {"127.0.0.1", "localhost", "[::1]", "::1"} for host in ALLOWED_HOSTS)
if not DEBUG and not LOCAL:
    env.required(
        ["DJANGO_SECRET_KEY", "DATABASE_URL", "REDIS_URL", "TIPS_UPSTREAM_URL"],
        why=f"to serve {', '.join(ALLOWED_HOSTS)} (DJANGO_ALLOWED_HOSTS is not loopback-only)",
    )
SECRET_KEY = env.str("DJANGO_SECRET_KEY", "insecure-local-only-key-never-served-beyond-loopback")

# project: its system checks (project/deploy_checks.py); workers: its management command
# (dead letters). Neither has models.
INSTALLED_APPS = ["app", "project", "workers"]
MIDDLEWARE = [
    "resilience_async.django.request_context_middleware",
    "resilience_async.django.security_middleware",
]
ROOT_URLCONF = "project.urls"
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Security headers and `manage.py check --deploy` --------------------------------------
# security_middleware (above) sets X-Frame-Options DENY, these two, Cross-Origin-Opener-Policy
# (Django's default, same-origin) and HSTS on HTTPS answers, as Django's SecurityMiddleware
# would, on the event loop.
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# HSTS on answers to HTTPS requests. A request is HTTPS when it came over TLS, or through a
# TLS-terminating proxy that uvicorn trusts (its FORWARDED_ALLOW_IPS, default 127.0.0.1: it
# then takes the scheme from X-Forwarded-Proto); no SECURE_PROXY_SSL_HEADER, which would
# trust that header from any client. A deployment's default is a year for this host name
# only; subdomains and preloading commit the whole domain, its owner's call. Locally 0: a
# browser told HSTS for localhost refuses every other plain-HTTP server there.
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", 0 if LOCAL else 365 * 86400)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", False)
# No SECURE_SSL_REDIRECT (the service's middleware makes none): plain HTTP is the proxy's to
# refuse (or redirect, for browsers); an API that redirects lets clients send their
# credentials in clear first and find out only later.
# No sessions or CSRF cookies are set (the API authenticates by header); should sessions be
# installed (the admin), their cookies are HTTPS-only beyond loopback (security.W010/W016).
SESSION_COOKIE_SECURE = not LOCAL
CSRF_COOKIE_SECURE = not LOCAL
# Django's checks that ask for its own middleware, silenced because the guarantee is kept
# another way, and checked that way by project/deploy_checks.py:
SILENCED_SYSTEM_CHECKS = [
    # SecurityMiddleware and XFrameOptionsMiddleware: security_middleware sets their headers
    # (no thread hand-off per request); project.W001 checks it is installed, project.W004 and
    # W006 the HSTS and nosniff settings Django checks only with its own middleware.
    "security.W001",
    "security.W002",
    # CsrfViewMiddleware: CSRF forges requests a browser authenticates by itself, with a
    # cookie; this API takes none (no session; writes will take `Authorization: Bearer`
    # keys). project.W003 asks for CSRF whenever sessions are installed (the admin).
    "security.W003",
]

# --- The Django admin (off by default) ------------------------------------------------------
# Operators' views of orders, reports and the outbox at ADMIN_URL. On, it brings the contrib
# apps it needs (their tables come with `manage.py migrate`) and their middleware, each of
# which runs only under ADMIN_URL (project/admin/middleware.py): the API's requests pass
# them by, on the loop, with no session, no CSRF check and no thread. Off, none is loaded.
ADMIN_ENABLED = env.bool("ADMIN_ENABLED", False)
ADMIN_URL = "admin/"
if ADMIN_ENABLED:
    INSTALLED_APPS += [
        "project.admin.apps.AdminConfig",  # django.contrib.admin, with the service's site
        "django.contrib.auth",
        "django.contrib.contenttypes",
        "django.contrib.sessions",
        "django.contrib.messages",
        "django.contrib.staticfiles",
    ]
    MIDDLEWARE += [
        "project.admin.middleware.SessionMiddleware",
        "project.admin.middleware.CsrfViewMiddleware",
        "project.admin.middleware.AuthenticationMiddleware",
        "project.admin.middleware.MessageMiddleware",
    ]
    TEMPLATES = [
        {
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "APP_DIRS": True,
            "OPTIONS": {
                "context_processors": [
                    "django.template.context_processors.request",
                    "django.contrib.auth.context_processors.auth",
                    "django.contrib.messages.context_processors.messages",
                ]
            },
        }
    ]
    # The admin's CSS and JavaScript, served by the app from the installed apps (or, after
    # `manage.py collectstatic`, from STATIC_ROOT by a web server in front).
    STATIC_URL = "static/"
    STATIC_ROOT = env.str("STATIC_ROOT", "") or None
    AUTH_PASSWORD_VALIDATORS = [
        {"NAME": f"django.contrib.auth.password_validation.{name}"}
        for name in (
            "UserAttributeSimilarityValidator",
            "MinimumLengthValidator",
            "CommonPasswordValidator",
            "NumericPasswordValidator",
        )
    ]
    # An operator's login lasts a working day (its cookies are HTTPS-only beyond loopback).
    SESSION_COOKIE_AGE = 8 * 3600
    # Behind a proxy that ends TLS, the admin's https:// origin (Django sees plain http).
    CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", [])

# --- Dependencies ------------------------------------------------------------------------
# DATABASE_URL may list several hosts (libpq multi-host) with target_session_attrs=read-write,
# so that after a failover the primary is found again without a restart.
DATABASE_URL = env.str("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/app")
DATABASE_REPLICA_URLS = env.list("DATABASE_REPLICA_URLS", [])
# Patroni's REST API on each member (http://host:8008,...): its view of the cluster then names
# the primary and the replicas that take reads (docs/patroni.md). Unset: the URLs alone do.
DATABASE_PATRONI_URLS = env.list("DATABASE_PATRONI_URLS", [])
DATABASE_MAX_REPLICA_LAG = env.seconds("DATABASE_MAX_REPLICA_LAG", 5.0)
DATABASE_CONNECT_TIMEOUT = env.seconds("DATABASE_CONNECT_TIMEOUT", 2.0, allow_zero=False)
DATABASE_POOL_MIN_SIZE = env.int("DATABASE_POOL_MIN_SIZE", 1)
DATABASE_POOL_MAX_SIZE = env.int("DATABASE_POOL_MAX_SIZE", 20, min_value=1)
DATABASE_POOL_TIMEOUT = env.seconds("DATABASE_POOL_TIMEOUT", 2.0, allow_zero=False)
# Callers queued per pool, each for at most its timeout. As many as MAX_IN_FLIGHT_REQUESTS:
# a refusal here has cost its request most of its path already, and a client refused asks
# again at once, so the door (the in-flight limit) refuses by count and the pools by time
# (`bench scale` shows goodput falling to nothing at 1024 connections when this is lower).
DATABASE_POOL_MAX_WAITING = env.int("DATABASE_POOL_MAX_WAITING", 1000)
# A read waits this long for a replica connection before the next server takes it.
DATABASE_REPLICA_TIMEOUT = env.seconds("DATABASE_REPLICA_TIMEOUT", 0.5, allow_zero=False)
DATABASE_QUERY_TIMEOUT = env.seconds("DATABASE_QUERY_TIMEOUT", 5.0, allow_zero=False)
# How often each server's reachability, role, replay lag and replay position are sampled.
DATABASE_MONITOR_INTERVAL = env.seconds("DATABASE_MONITOR_INTERVAL", 0.5, allow_zero=False)
DATABASE_BREAKER_FAIL_MAX = env.int("DATABASE_BREAKER_FAIL_MAX", 3, min_value=1)
DATABASE_BREAKER_RESET_TIMEOUT = env.seconds(
    "DATABASE_BREAKER_RESET_TIMEOUT", 1.0, allow_zero=False
)
# Slow servers (docs/tail-latency.md). Each server's latency estimate (a peak-EWMA of its
# round trips, faster samples pulling it down over DATABASE_LATENCY_DECAY seconds) ranks the
# replicas; one DATABASE_OUTLIER_RATIO times slower than its best peer and above
# DATABASE_OUTLIER_FLOOR is ejected for DATABASE_OUTLIER_EJECTION seconds (once more each
# time in a row, up to DATABASE_OUTLIER_MAX_EJECTION). Its reads go to the primary while
# they hold under DATABASE_PRIMARY_READ_SHARE of its connections, to the slow replica past it.
DATABASE_LATENCY_ROUTING = env.bool("DATABASE_LATENCY_ROUTING", True)
DATABASE_LATENCY_DECAY = env.seconds("DATABASE_LATENCY_DECAY", 1.0, allow_zero=False)
DATABASE_OUTLIER_RATIO = env.number("DATABASE_OUTLIER_RATIO", 3.0, min_value=1.0, above=True)
DATABASE_OUTLIER_FLOOR = env.seconds("DATABASE_OUTLIER_FLOOR", 0.02)
DATABASE_OUTLIER_EJECTION = env.seconds("DATABASE_OUTLIER_EJECTION", 5.0, allow_zero=False)
DATABASE_OUTLIER_MAX_EJECTION = env.seconds("DATABASE_OUTLIER_MAX_EJECTION", 60.0,
                                            allow_zero=False)  # fmt: skip
DATABASE_PRIMARY_READ_SHARE = env.fraction("DATABASE_PRIMARY_READ_SHARE", 0.5)
# Hedged reads: a read unanswered after the DATABASE_HEDGE_PERCENTILE of recent reads'
# latency (within DATABASE_HEDGE_MIN_DELAY..DATABASE_HEDGE_MAX_DELAY) also starts on the next
# eligible server; the first answer wins. Hedges stay within DATABASE_HEDGE_BUDGET of reads.
DATABASE_HEDGE = env.bool("DATABASE_HEDGE", True)
DATABASE_HEDGE_PERCENTILE = env.fraction("DATABASE_HEDGE_PERCENTILE", 0.95)
DATABASE_HEDGE_MIN_DELAY = env.seconds("DATABASE_HEDGE_MIN_DELAY", 0.005)
DATABASE_HEDGE_MAX_DELAY = env.seconds("DATABASE_HEDGE_MAX_DELAY", 0.1)
DATABASE_HEDGE_BUDGET = env.fraction("DATABASE_HEDGE_BUDGET", 0.1)
if DATABASE_OUTLIER_MAX_EJECTION < DATABASE_OUTLIER_EJECTION:
    raise ImproperlyConfigured(
        "DATABASE_OUTLIER_MAX_EJECTION must be at least DATABASE_OUTLIER_EJECTION"
    )
if not 0 < DATABASE_HEDGE_PERCENTILE < 1 or DATABASE_HEDGE_MAX_DELAY < DATABASE_HEDGE_MIN_DELAY:
    raise ImproperlyConfigured(
        "DATABASE_HEDGE_PERCENTILE must be between 0 and 1 (exclusive), and "
        "DATABASE_HEDGE_MAX_DELAY at least DATABASE_HEDGE_MIN_DELAY"
    )
# Idempotency keys are remembered this long (IETF draft-ietf-httpapi-idempotency-key-header).
IDEMPOTENCY_KEY_TTL = env.seconds("IDEMPOTENCY_KEY_TTL", 24 * 3600.0, allow_zero=False)
REDIS_URL = env.str("REDIS_URL", "redis://127.0.0.1:6379/0")
REDIS_TIMEOUT = env.seconds("REDIS_TIMEOUT", 0.25, allow_zero=False)
BROKER_URL = env.str("BROKER_URL", REDIS_URL)
TIPS_UPSTREAM_URL = env.str("TIPS_UPSTREAM_URL", "http://127.0.0.1:8001")

# --- Callers: API keys -----------------------------------------------------------------------
# Writes need `Authorization: Bearer <key>` (manage.py apikeys); reads too when this is on.
API_READS_NEED_KEY = env.bool("API_READS_NEED_KEY", False)
# What the database says about a key is kept this long: a revocation takes effect within it.
API_KEY_CACHE_TTL = env.seconds("API_KEY_CACHE_TTL", 5.0)
# Token buckets shared by every process through Redis (resilience_async.RateLimiter), as
# REQUESTS/SECONDS or off. Per key: each key's own limit (manage.py apikeys --limit), else
# this one. Per client address, on every API request: off by default, because behind a load
# balancer or proxy every client has its address; set it when clients connect directly.
RATE_LIMIT_KEY = env.rate("RATE_LIMIT_KEY", "6000/60")
RATE_LIMIT_ADDRESS = env.rate("RATE_LIMIT_ADDRESS", "off")
# A Redis round trip of the limiter taking longer is decided in process (and fails open).
RATE_LIMIT_REDIS_TIMEOUT = env.seconds("RATE_LIMIT_REDIS_TIMEOUT", 0.05, allow_zero=False)

# --- Outbound HTTP: timeouts, retries, bulkhead, circuit breaker --------------------------
UPSTREAM_TIMEOUT = env.seconds("UPSTREAM_TIMEOUT", 2.0, allow_zero=False)
UPSTREAM_CONNECT_TIMEOUT = env.seconds("UPSTREAM_CONNECT_TIMEOUT", 1.0, allow_zero=False)
UPSTREAM_POOL_TIMEOUT = env.seconds("UPSTREAM_POOL_TIMEOUT", 0.5, allow_zero=False)
UPSTREAM_MAX_CONNECTIONS = env.int("UPSTREAM_MAX_CONNECTIONS", 100, min_value=1)
UPSTREAM_MAX_CONCURRENCY = env.int("UPSTREAM_MAX_CONCURRENCY", 256, min_value=1)
UPSTREAM_RETRY_ATTEMPTS = env.int("UPSTREAM_RETRY_ATTEMPTS", 3, min_value=1)
UPSTREAM_RETRY_BUDGET = env.fraction("UPSTREAM_RETRY_BUDGET", 0.2)
# Bytes an upstream's answer may hold, as sent and decoded: the tips are about 1 KiB, and a
# larger body fails (the breaker counts it) before it can take the process's memory.
UPSTREAM_MAX_BODY = env.int("UPSTREAM_MAX_BODY", 256 * 1024, min_value=1)
# Hedged tips GETs (docs/tail-latency.md): once an attempt is slower than this percentile of
# recent ones (within the delay bounds), a second is sent, within a budget; the first wins.
UPSTREAM_HEDGE = env.bool("UPSTREAM_HEDGE", True)
UPSTREAM_HEDGE_PERCENTILE = env.fraction("UPSTREAM_HEDGE_PERCENTILE", 0.95)
if not 0 < UPSTREAM_HEDGE_PERCENTILE < 1:
    raise ImproperlyConfigured("UPSTREAM_HEDGE_PERCENTILE must be between 0 and 1, exclusive")
UPSTREAM_HEDGE_MIN_DELAY = env.seconds("UPSTREAM_HEDGE_MIN_DELAY", 0.01)
UPSTREAM_HEDGE_MAX_DELAY = env.seconds("UPSTREAM_HEDGE_MAX_DELAY", 0.5)
if UPSTREAM_HEDGE_MIN_DELAY > UPSTREAM_HEDGE_MAX_DELAY:
    raise ImproperlyConfigured("UPSTREAM_HEDGE_MIN_DELAY must be <= UPSTREAM_HEDGE_MAX_DELAY")
UPSTREAM_HEDGE_BUDGET = env.fraction("UPSTREAM_HEDGE_BUDGET", 0.1)
BREAKER_FAIL_MAX = env.int("BREAKER_FAIL_MAX", 5, min_value=1)
BREAKER_FAILURE_RATE = env.fraction("BREAKER_FAILURE_RATE", 0.5)
BREAKER_WINDOW = env.int("BREAKER_WINDOW", 20, min_value=1)
BREAKER_MIN_CALLS = env.int("BREAKER_MIN_CALLS", 10, min_value=1)
BREAKER_SLOW_CALL = env.seconds("BREAKER_SLOW_CALL", 0.0)
# Short: while the breaker is open, cached tips are served stale at once, and each period
# ends with one probe (a background refresh) that notices the upstream's recovery.
BREAKER_RESET_TIMEOUT = env.seconds("BREAKER_RESET_TIMEOUT", 5.0, allow_zero=False)
BREAKER_HALF_OPEN_MAX_CALLS = env.int("BREAKER_HALF_OPEN_MAX_CALLS", 1, min_value=1)
BREAKER_SHARED = env.bool("BREAKER_SHARED", True)

# --- Fallback cache ------------------------------------------------------------------------
CACHE_TTL = env.seconds("CACHE_TTL", 10.0)
CACHE_STALE_TTL = env.seconds("CACHE_STALE_TTL", 600.0)
# With stale tips at hand, a request waits at most this long for a refresh, then is served
# the stale tips while the refresh goes on in the background (stale-while-revalidate);
# "off": every request waits for its refresh, as before stale-while-revalidate.
CACHE_STALE_BUDGET: float | None = (
    None
    if env.str("CACHE_STALE_BUDGET", "").lower() == "off"
    else env.seconds("CACHE_STALE_BUDGET", 0.15)
)
# Concurrent misses of a key share one upstream call; off, each request makes its own.
CACHE_SINGLE_FLIGHT = env.bool("CACHE_SINGLE_FLIGHT", True)


def _django_database(url: str) -> dict[str, object]:
    """Django's DATABASES entry for a libpq URL; extra parameters pass through as OPTIONS."""
    params = conninfo_to_dict(url)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": params.pop("dbname", "postgres"),
        "USER": params.pop("user", ""),
        "PASSWORD": params.pop("password", ""),
        "HOST": params.pop("host", ""),
        "PORT": params.pop("port", ""),
        "OPTIONS": {"connect_timeout": round(DATABASE_CONNECT_TIMEOUT) or 1, **params},
        "CONN_MAX_AGE": 0,
    }


DATABASES = {"default": _django_database(DATABASE_URL)}

# --- Request limits ----------------------------------------------------------------------------
# A request body over this many bytes is refused with 413 before it is read, with
# `Connection: close` (the rest is discarded while the connection lingers, below); the API's
# bodies are small JSON.
MAX_REQUEST_BODY = env.int("MAX_REQUEST_BODY", 16 * 1024, min_value=1)
# The server's bounds on receiving a request (project/serving.py): a client that has not sent
# its whole header block this long after its first byte, or its body this long after the
# headers, gets 408 and is disconnected; more header bytes or fields than these get 431.
HTTP_HEADER_TIMEOUT = env.seconds("HTTP_HEADER_TIMEOUT", 10.0, allow_zero=False)
HTTP_BODY_TIMEOUT = env.seconds("HTTP_BODY_TIMEOUT", 10.0, allow_zero=False)
HTTP_MAX_HEADER_BYTES = env.int("HTTP_MAX_HEADER_BYTES", 16 * 1024, min_value=1)
HTTP_MAX_HEADERS = env.int("HTTP_MAX_HEADERS", 100, min_value=1)
# A connection answered and closed while its request is still arriving (the 413 above, a
# 408/431) lingers as nginx's does (`lingering_close`): the server sends no more, and reads
# and discards what the client still sends, so that a client which sends its whole body
# before reading (urllib, http.client) reads the answer instead of a reset. It ends when the
# client closes or is quiet HTTP_LINGER_TIMEOUT, else after HTTP_LINGER_TIME (0: no lingering)
# or HTTP_LINGER_BYTES (at most the declared body) more, whichever comes first.
HTTP_LINGER_TIMEOUT = env.seconds("HTTP_LINGER_TIMEOUT", 5.0, allow_zero=False)
HTTP_LINGER_TIME = env.seconds("HTTP_LINGER_TIME", 30.0)
HTTP_LINGER_BYTES = env.int("HTTP_LINGER_BYTES", 8 * 1024 * 1024, min_value=1)

# --- Load shedding ---------------------------------------------------------------------------
# Requests in flight per server process beyond which new ones are answered 503 (0: no limit);
# under the adaptive limit, the most it may grow to.
MAX_IN_FLIGHT_REQUESTS = env.int("MAX_IN_FLIGHT_REQUESTS", 1000)
# "fixed": MAX_IN_FLIGHT_REQUESTS, always. "adaptive": the limit follows the requests'
# measured latency (Gradient2, resilience_async/_adaptive.py), between MAX_IN_FLIGHT_MIN and
# MAX_IN_FLIGHT_REQUESTS, starting at MAX_IN_FLIGHT_INITIAL, so requests do not queue inside
# the process. Not the default: one limit for every route sheds them all when one route's
# dependency hangs (docs/tail-latency.md, "Why it is not the default").
MAX_IN_FLIGHT_LIMIT = env.choice("MAX_IN_FLIGHT_LIMIT", "fixed", ("adaptive", "fixed"))
MAX_IN_FLIGHT_INITIAL = env.int("MAX_IN_FLIGHT_INITIAL", 20, min_value=1)
MAX_IN_FLIGHT_MIN = env.int("MAX_IN_FLIGHT_MIN", 20, min_value=1)
# How much slower than their long-term average requests may get before the adaptive limit
# shrinks (Gradient2's tolerance; 1.5: half as slow again).
MAX_IN_FLIGHT_TOLERANCE = env.number("MAX_IN_FLIGHT_TOLERANCE", 1.5, min_value=1.0)
# Past it, a request first waits this long for a place (at most MAX_IN_FLIGHT_REQUESTS wait),
# so a client that asks again at once after a 503 cannot spin the process on refusals: as
# long as the refusal's Retry-After (1 s) tells it to wait. Under a fixed limit in order;
# under the adaptive one newest first, admitted only within the requests' long-term latency,
# else held (half to all of the wait) and refused.
MAX_IN_FLIGHT_WAIT = env.seconds("MAX_IN_FLIGHT_WAIT", 1.0)
# The web process collects its youngest GC generation every this many net allocations
# (CPython's default: 700), and freezes what start-up built (resilience_async/_gc.py).
GC_GEN0_THRESHOLD = env.int("GC_GEN0_THRESHOLD", 10_000, min_value=1)

# --- Background jobs: Dramatiq workers fed by the outbox relay -----------------------------
WORKER_PROCESSES = env.int("WORKER_PROCESSES", 1, min_value=1)
WORKER_THREADS = env.int("WORKER_THREADS", 4, min_value=1)
# On SIGTERM running jobs get this long to finish; unfinished ones are redelivered later.
WORKER_SHUTDOWN_TIMEOUT = env.seconds("WORKER_SHUTDOWN_TIMEOUT", 5.0, allow_zero=False)
# Transient failures (database, upstream) are retried with exponential backoff and jitter.
JOBS_MAX_RETRIES = env.int("JOBS_MAX_RETRIES", 5)
JOBS_MIN_BACKOFF = env.seconds("JOBS_MIN_BACKOFF", 1.0, allow_zero=False)
JOBS_MAX_BACKOFF = env.seconds("JOBS_MAX_BACKOFF", 60.0, allow_zero=False)
JOBS_TIME_LIMIT = env.seconds("JOBS_TIME_LIMIT", 120.0, allow_zero=False)
JOBS_MAX_AGE = env.seconds("JOBS_MAX_AGE", 24 * 3600.0, allow_zero=False)
# Redis broker: a worker silent this long is dead and its unacknowledged messages are
# requeued by the next maintenance run, which JOBS_MAINTENANCE_CHANCE of broker commands do.
JOBS_HEARTBEAT_TIMEOUT = env.seconds("JOBS_HEARTBEAT_TIMEOUT", 10.0, allow_zero=False)
JOBS_MAINTENANCE_CHANCE = env.fraction("JOBS_MAINTENANCE_CHANCE", 0.5)
# The report job: real aggregation over the orders, paced to take at least this long.
REPORT_WORK_SECONDS = env.seconds("REPORT_WORK_SECONDS", 3.0)
RELAY_INTERVAL = env.seconds("RELAY_INTERVAL", 1.0, allow_zero=False)
RELAY_BATCH = env.int("RELAY_BATCH", 100, min_value=1)
# A job still unfinished this long after its message was published is presumed lost by the
# broker (a Redis restarted without its data) and published again; longer than a job runs.
JOBS_REPUBLISH_AFTER = env.seconds("JOBS_REPUBLISH_AFTER", 300.0, allow_zero=False)
# Published outbox messages are deleted by the relay after this long.
OUTBOX_KEEP_SENT = env.seconds("OUTBOX_KEEP_SENT", 7 * 86400.0, allow_zero=False)
# Readiness warns when the oldest unpublished outbox message is older than this.
OUTBOX_WARN_AGE = env.seconds("OUTBOX_WARN_AGE", 30.0, allow_zero=False)

# --- Health ------------------------------------------------------------------------------
HEALTH_CHECK_TIMEOUT = env.seconds("HEALTH_CHECK_TIMEOUT", 1.0, allow_zero=False)
HEALTH_CACHE_TTL = env.seconds("HEALTH_CACHE_TTL", 1.0)
HEALTH_TOKEN = env.str("HEALTH_TOKEN", "")
# After SIGTERM, readiness fails at once; the server keeps serving this long before it stops
# accepting, so a load balancer sees the failing probe before connections are refused.
SHUTDOWN_DRAIN_DELAY = env.seconds("SHUTDOWN_DRAIN_DELAY", 0.0)
SHUTDOWN_TIMEOUT = env.seconds("SHUTDOWN_TIMEOUT", 5.0)

# --- Logging -----------------------------------------------------------------------------
LOG_LEVEL = env.choice("LOG_LEVEL", "INFO", ("debug", "info", "warning", "error")).upper()
_LOG_FORMAT = env.choice("LOG_FORMAT", "auto", ("auto", "json", "console"))
LOG_JSON = _LOG_FORMAT == "json" or (_LOG_FORMAT == "auto" and not sys.stderr.isatty())
ACCESS_LOG = env.bool("ACCESS_LOG", False)

SERVICE_NAME = env.str("SERVICE_NAME", "resilient-django")

# One handler on the root logger; Django's and uvicorn's loggers propagate to it, so every
# line has the same shape and carries the request id of the request that logged it.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "resilience_async.RequestIdFilter"}},
    "formatters": {
        "json": {"()": "resilience_async.JsonFormatter", "service": SERVICE_NAME},
        "console": {"()": "resilience_async.ConsoleFormatter"},
    },
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "formatter": "json" if LOG_JSON else "console",
            "filters": ["request_id"],
        },
    },
    "root": {"handlers": ["stderr"], "level": LOG_LEVEL},
    "loggers": {
        **{
            name: {"handlers": [], "level": LOG_LEVEL, "propagate": True}
            for name in ("django", "uvicorn", "uvicorn.error")
        },
        # ACCESS_LOG replaces uvicorn's access log: same lines, structured, with the request id.
        "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        # One line per outbound request is the metrics' job, not the log's.
        "httpx": {"handlers": [], "level": "WARNING", "propagate": True},
        "httpcore": {"handlers": [], "level": "WARNING", "propagate": True},
        # pika logs one refused connection as half a dozen errors; whoever tried (the relay,
        # a command) says once what failed. Dramatiq quiets it so in its worker processes.
        "pika": {"handlers": [], "level": "CRITICAL", "propagate": True},
    },
}

# --- Metrics -----------------------------------------------------------------------------
# Prometheus export of every primitive and request (GET /metrics); off, nothing is counted
# in prometheus-client and /metrics shows only the process's default collectors.
METRICS_ENABLED = env.bool("METRICS_ENABLED", True)
# Set (to an empty directory) when several server processes serve: prometheus-client reads
# the same variable at import and then keeps each process's values in files there.
METRICS_MULTIPROC_DIR = env.str("PROMETHEUS_MULTIPROC_DIR", "")
# /metrics answers loopback; a scrape from elsewhere must send `Authorization: Bearer <this>`
# (Prometheus: `authorization: {credentials: ...}`), and is refused while it is empty.
METRICS_TOKEN = env.str("METRICS_TOKEN", "")
