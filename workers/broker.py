"""The Dramatiq broker for a `BROKER_URL`: Redis (`redis://`) or RabbitMQ (`amqp://`).

Building a broker opens no connection; nothing here sets Dramatiq's global broker or
declares actors: the process's root (`project/worker.py`) does, from settings, at start.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import dramatiq
import redis
from dramatiq.brokers.redis import MAINTENANCE_SCALE, RedisBroker, _RedisConsumer
from dramatiq.errors import ConnectionClosed

logger = logging.getLogger(__name__)

# A consumer facing a Redis that is down or frozen asks again after this many seconds.
OUTAGE_PAUSE = 1.0


class PatientRedisConsumer(_RedisConsumer):  # type: ignore[misc]
    """Dramatiq's Redis consumer, riding out a frozen or restarted Redis.

    Dramatiq's own turns only `redis.ConnectionError` into its retryable connection error:
    a *frozen* Redis raises `redis.TimeoutError`, so a fetch crashes the consumer (logged
    CRITICAL, restarted) and an ack is given up ("You've found a bug in Dramatiq"), leaving
    the message in the worker's ack set for as long as the worker lives. Here every Redis
    failure of an ack or nack is retryable (Dramatiq retries it until Redis answers), and
    a failed fetch is a warning and a pause, not a crash.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._failing = False

    def ack(self, message: Any) -> None:
        try:
            super().ack(message)
        except redis.RedisError as exc:  # not a ConnectionError: a timeout, say
            raise ConnectionClosed(exc) from None

    def nack(self, message: Any) -> None:
        try:
            super().nack(message)
        except redis.RedisError as exc:
            raise ConnectionClosed(exc) from None

    def __next__(self) -> Any:
        try:
            message = super().__next__()
        except (ConnectionClosed, redis.RedisError) as exc:
            if not self._failing:
                self._failing = True
                logger.warning("broker unavailable (%s); waiting for it", exc)
            time.sleep(OUTAGE_PAUSE)
            return None
        if self._failing:
            self._failing = False
            logger.info("broker available again")
        return message


class PatientRedisBroker(RedisBroker):  # type: ignore[misc]
    """A RedisBroker whose consumers ride out a frozen or restarted Redis."""

    @property
    def consumer_class(self) -> type[PatientRedisConsumer]:
        return PatientRedisConsumer


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
        return PatientRedisBroker(
            url=url,
            middleware=list(middleware),
            heartbeat_timeout=int(heartbeat_timeout * 1000),
            maintenance_chance=round(maintenance_chance * MAINTENANCE_SCALE),
            socket_timeout=5,
            socket_connect_timeout=2,
        )
    if scheme in ("amqp", "amqps"):
        from dramatiq.brokers.rabbitmq import RabbitmqBroker  # noqa: PLC0415 - needs pika

        # A publish returns once RabbitMQ has the message (written to disk, for the durable
        # queues and persistent messages Dramatiq uses): the relay marks a row sent only
        # then, so a node killed right after a publish loses nothing the relay let go of.
        return RabbitmqBroker(url=url, middleware=list(middleware), confirm_delivery=True)
    raise ValueError(f"BROKER_URL must be redis:// or amqp://, got {scheme or url!r}")
