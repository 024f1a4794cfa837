"""The ASGI application: Django on a thread-free handler, inside a lifespan shim.

Serve with `uvicorn project.asgi:application`. Pools and clients open on uvicorn's loop at
lifespan start-up and close at shutdown, once in-flight requests have drained.
"""

from __future__ import annotations

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
django.setup(set_prefix=False)

from django.conf import settings  # noqa: E402 - needs django.setup() first

from project.resources import for_process  # noqa: E402
from resilience_async import LifespanApp, tune_gc_for_serving  # noqa: E402
from resilience_async.django import EventLoopASGIHandler  # noqa: E402

resources = for_process()

application = LifespanApp(
    EventLoopASGIHandler(),
    lifecycle=resources.lifecycle,
    startup=resources.open,
    shutdown=resources.close,
    shutdown_timeout=settings.SHUTDOWN_TIMEOUT,
    drain_delay=settings.SHUTDOWN_DRAIN_DELAY,
)

# Last: everything built above is start-up's, frozen out of every later collection.
tune_gc_for_serving(settings.GC_GEN0_THRESHOLD)
