"""The service's load for locust: pacing, endpoint mix, records (`loadtests/locustfile.py`).

`pacing`, `mix`, `records`, `options`, `known`, `retries` and `run` are plain Python; only
`hooks` and `user` import locust, which patches the standard library with gevent on import,
so nothing here imports them but the locustfile.
"""
