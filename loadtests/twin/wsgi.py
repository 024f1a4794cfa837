"""The WSGI application of the sync twin (the guide's way), served by gunicorn in the bench."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

# Always the twin's settings: an inherited DJANGO_SETTINGS_MODULE (a test runner's, a shell's)
# would otherwise serve the async service's views through the sync handler.
os.environ["DJANGO_SETTINGS_MODULE"] = "loadtests.twin.settings"

application = get_wsgi_application()
