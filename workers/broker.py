"""The Dramatiq broker from `BROKER_URL`: Redis (`redis://`) or RabbitMQ (`amqp://`).

Middleware is Dramatiq's own: retries with exponential backoff (transient errors only, see
`workers.actors`), a time limit, a maximum age, and shutdown notifications, plus
`RecordFailures`, which writes a job's final failure to its row so it is visible through
the API (the message itself goes to the broker's dead-letter queue).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import dramatiq
from dramatiq.brokers.redis import MAINTENANCE_SCALE, RedisBroker
from dramatiq.middleware import AgeLimit, Retries, ShutdownNotifications, TimeLimit

from workers.failures import RecordFailures


def make_broker(settings: Any) -> dramatiq.Broker:
    """A broker for `settings.BROKER_URL`, with the project's middleware, set as Dramatiq's."""
    url = settings.BROKER_URL
    scheme = urlsplit(url).scheme
    middleware = [
        AgeLimit(max_age=int(settings.JOBS_MAX_AGE * 1000)),
        TimeLimit(time_limit=int(settings.JOBS_TIME_LIMIT * 1000)),
        ShutdownNotifications(),
        RecordFailures(settings.DATABASE_URL, pool_size=settings.WORKER_THREADS + 1),
        Retries(
            max_retries=settings.JOBS_MAX_RETRIES,
            min_backoff=int(settings.JOBS_MIN_BACKOFF * 1000),
            max_backoff=int(settings.JOBS_MAX_BACKOFF * 1000),
        ),
    ]  # RecordFailures before Retries: "after" hooks run in reverse, so it sees the verdict
    broker: dramatiq.Broker
    if scheme in ("redis", "rediss", "unix"):
        broker = RedisBroker(
            url=url,
            middleware=middleware,
            heartbeat_timeout=int(settings.JOBS_HEARTBEAT_TIMEOUT * 1000),
            maintenance_chance=round(settings.JOBS_MAINTENANCE_CHANCE * MAINTENANCE_SCALE),
            socket_timeout=5,
            socket_connect_timeout=2,
        )
    elif scheme in ("amqp", "amqps"):
        from dramatiq.brokers.rabbitmq import RabbitmqBroker  # noqa: PLC0415 - needs pika

        broker = RabbitmqBroker(url=url, middleware=middleware)
    else:
        raise ValueError(f"BROKER_URL must be redis:// or amqp://, got {scheme or url!r}")
    dramatiq.set_broker(broker)
    return broker
