"""Django project: settings, URLs, the ASGI application, and the worker's and relay's roots."""
