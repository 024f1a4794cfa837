"""Stock Django ASGI (`get_asgi_application()`) on the baseline settings: the bench's reference."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ["DJANGO_SETTINGS_MODULE"] = "loadtests.bench.stock_settings"

application = get_asgi_application()
