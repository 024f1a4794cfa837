"""Settings of the sync twin: the guide's way, Django's stock middleware and sync views.

Everything else, environment included, comes from `project.settings`.
"""

from __future__ import annotations

from project.settings import *  # noqa: F403

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
]
ROOT_URLCONF = "app.urls_sync"
# The guide's fallback store: Django's cache on Redis.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,  # noqa: F405
    }
}
