"""Background jobs: the outbox relay, the Dramatiq broker, the actors and their jobs.

    request ─ one transaction ─▶ reports row + outbox row ─ relay ─▶ broker ─▶ worker ─▶ result

    root.py      the worker's and the relay's composition roots, built from settings at start
    outbox.py    the outbox's SQL and its readiness probe
    relay.py     publishes committed outbox rows to the broker
    broker.py    a Redis or RabbitMQ broker for BROKER_URL
    actors.py    the actors' names, queues and retry rules
    reports.py   the report job, idempotent, on the library's Database and ResilientClient
    failures.py  a job's retries and final failure, written on its row

Run a worker with `python -m workers` (Dramatiq's CLI on `workers.root:setup_worker`) and
the relay with `python -m workers relay`; `make run` starts both.
"""
