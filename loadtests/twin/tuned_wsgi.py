"""The sync twin tuned as far as sync Django goes, the bench's fairest sync baseline.

Served by gunicorn's gthread workers; pybreaker without its lock held across the call (the
guide's breaker serialises every call through it: ~10 req/s with a 100 ms upstream), and a
requests connection pool as large as the thread count.
"""

from __future__ import annotations

import os
from typing import Any

import pybreaker
from django.conf import settings
from django.core.wsgi import get_wsgi_application
from requests.adapters import HTTPAdapter

os.environ["DJANGO_SETTINGS_MODULE"] = "loadtests.twin.settings"
application = get_wsgi_application()

from loadtests.twin import views  # noqa: E402 - needs the settings above


class ThreadFriendlyBreaker(pybreaker.CircuitBreaker):
    """pybreaker's `call` minus `with self._lock`: counters may race, calls no longer queue."""

    def call(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        return self.state.call(func, *args, **kwargs)


views.use_breaker(
    ThreadFriendlyBreaker(
        fail_max=settings.BREAKER_FAIL_MAX,
        reset_timeout=settings.BREAKER_RESET_TIMEOUT,
        exclude=[views.is_client_error],
        name="tips-upstream",
    )
)
views.session.mount("http://", HTTPAdapter(pool_connections=4, pool_maxsize=256))
