"""The sync twin: the service's API done the guide's way, benchmark equipment only.

pybreaker around `requests`, Django's cache on Redis, the Django ORM with a replica router,
sync views under gunicorn: the same work as the async service, so `python -m loadtests
bench` compares the two on it. It uses the service's models and input rules (`app`), never
the other way round, and its dependencies are the `twin` extra, not the service's.

    settings.py    the service's settings, the guide's way (stock middleware, router, cache)
    urls.py        the same paths as `project/urls.py`
    views.py       the sync views
    routers.py     the guide's primary/replica database router
    wsgi.py        what gunicorn serves: `loadtests.twin.wsgi:application`
    tuned_wsgi.py  the twin tuned as far as sync Django goes (gthread, lock-free breaker)
"""
