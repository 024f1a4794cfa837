"""Background jobs: the outbox relay, the Dramatiq broker, the actors and their jobs.

    request ─ one transaction ─▶ reports row + outbox row ─ relay ─▶ broker ─▶ worker ─▶ result

    outbox.py    the outbox's SQL and its readiness probe
    relay.py     publishes committed outbox rows to the broker
    broker.py    a Redis or RabbitMQ broker for BROKER_URL
    actors.py    the actors' names, queues and retry rules
    reports.py   the report job, idempotent, on the library's Database and ResilientClient
    failures.py  a job's retries and final failure, written on its row
    lifecycle.py the worker's event loop, and its resources opened and closed on it

Nothing here reads settings: the worker's and the relay's composition roots
(`project/worker.py`, `project/relay.py`) build these parts from settings when their
process starts. Run them with `python -m project.worker` and `python -m project.relay`;
`make run` starts both.
"""
