"""Settings of the sync twin: the guide's way, Django's stock middleware and sync views.

Everything else, environment included, comes from `project.settings`; its INSTALLED_APPS
(`app`) give the twin the service's models.
"""

from __future__ import annotations

from project.settings import *  # noqa: F403
from project.settings import _django_database

# The guide's replication set-up: the first replica under "replica", and a router.
if DATABASE_REPLICA_URLS:  # noqa: F405
    DATABASES = {**DATABASES, "replica": _django_database(DATABASE_REPLICA_URLS[0])}  # noqa: F405
DATABASE_ROUTERS = ["loadtests.twin.routers.PrimaryReplicaRouter"]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
]
ROOT_URLCONF = "loadtests.twin.urls"
WSGI_APPLICATION = "loadtests.twin.wsgi.application"
# The guide's fallback store: Django's cache on Redis.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,  # noqa: F405
    }
}
