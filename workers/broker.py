"""The Dramatiq broker for a `BROKER_URL`: Redis (`redis://`) or RabbitMQ (`amqp://`).

Building a broker opens no connection; nothing here sets Dramatiq's global broker or
declares actors: the process's root (`project/worker.py`) does, from settings, at start.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

import dramatiq
from dramatiq.brokers.redis import MAINTENANCE_SCALE, RedisBroker


def make_broker(
    url: str,
    *,
    middleware: Sequence[dramatiq.Middleware] = (),
    heartbeat_timeout: float = 60.0,
    maintenance_chance: float = 0.001,
) -> dramatiq.Broker:
    """A broker for `url` with exactly `middleware` (Dramatiq's defaults are not added).

    Args:
        heartbeat_timeout: Redis only: seconds after which a silent worker is dead and its
            unacknowledged messages may be requeued.
        maintenance_chance: Redis only: the fraction of broker commands that also run the
            maintenance that requeues them.
    """
    scheme = urlsplit(url).scheme
    if scheme in ("redis", "rediss", "unix"):
        return RedisBroker(
            url=url,
            middleware=list(middleware),
            heartbeat_timeout=int(heartbeat_timeout * 1000),
            maintenance_chance=round(maintenance_chance * MAINTENANCE_SCALE),
            socket_timeout=5,
            socket_connect_timeout=2,
        )
    if scheme in ("amqp", "amqps"):
        from dramatiq.brokers.rabbitmq import RabbitmqBroker  # noqa: PLC0415 - needs pika

        return RabbitmqBroker(url=url, middleware=list(middleware))
    raise ValueError(f"BROKER_URL must be redis:// or amqp://, got {scheme or url!r}")
