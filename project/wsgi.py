"""The WSGI application of the sync twin (the guide's way), served by gunicorn in the bench."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings_sync")

application = get_wsgi_application()
