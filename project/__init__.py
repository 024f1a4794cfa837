"""Django project: settings, URLs, the ASGI application (and the WSGI one for the sync twin)."""
