"""Dramatiq's dead letters, read and sent back to their queues, on Redis or RabbitMQ.

A message that used up its retries, or was dropped as too old, is dead-lettered by the
broker: on Redis into the `<namespace>:<queue>.XQ` sorted set (scored by when, in ms) with
the message in the `.XQ.msgs` hash, keyed by its Redis id; on RabbitMQ into the durable
`<queue>.XQ` queue. Both keep them `dramatiq_dead_message_ttl` (7 days), then drop them.

Requeueing sends a fresh copy of the message (same id, actor and arguments; no retry count,
no traceback, a new timestamp, so `AgeLimit` does not drop it at once) to its queue, and
only then takes the dead letter away: a failure in between leaves a copy behind, never
loses one, and the actors are idempotent. (A report's own dead letter finds the report
`failed`, which its job leaves alone: `manage.py reports requeue` runs a failed report again.)
"""

from __future__ import annotations

import datetime
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, cast

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.common import q_name, xq_name

# What a run left on a message: a requeued copy starts afresh without them.
RUN_STATE = frozenset({"retries", "traceback", "requeue_timestamp", "redis_message_id", "eta"})
UNDECODABLE = "(undecodable)"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One dead-lettered message, as an operator reads it."""

    message_id: str
    queue: str
    actor: str
    args: list[Any]
    kwargs: dict[str, Any]
    retries: int
    dead_since: float | None  # Unix time it was dead-lettered, when the broker says
    error: str  # the last line of its last retry's traceback ("" when it has none)

    def to_json(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "queue": self.queue,
            "actor": self.actor,
            "args": self.args,
            "kwargs": self.kwargs,
            "retries": self.retries,
            "dead_since": self.dead_since,
            "error": self.error,
        }


class DeadLetters(Protocol):
    """A broker's dead letters for one queue at a time."""

    def read(self, queue: str) -> list[DeadLetter]: ...

    def requeue(self, queue: str, message_ids: Collection[str] | None) -> list[DeadLetter]:
        """Send those with these ids (None: all) back to `queue`; the ones sent."""
        ...


def dead_letters(broker: dramatiq.Broker) -> DeadLetters:
    """The dead letters of `broker` (a Redis or RabbitMQ broker)."""
    if isinstance(broker, RedisBroker):
        return RedisDeadLetters(broker)
    from dramatiq.brokers.rabbitmq import RabbitmqBroker  # noqa: PLC0415 - needs pika

    if isinstance(broker, RabbitmqBroker):
        return RabbitmqDeadLetters(broker)
    raise TypeError(f"no dead letters to read on a {type(broker).__name__}")


def fresh_copy(message: dramatiq.Message[Any]) -> dramatiq.Message[Any]:
    """The message as first sent: same id, actor and arguments, none of its runs' state."""
    options = {key: value for key, value in message.options.items() if key not in RUN_STATE}
    return dramatiq.Message(
        queue_name=q_name(message.queue_name), actor_name=message.actor_name,
        args=message.args, kwargs=message.kwargs, options=options,
        message_id=message.message_id,
    )  # fmt: skip


class RedisDeadLetters:
    """Dead letters in Redis: the `.XQ` sorted set and its `.XQ.msgs` hash."""

    def __init__(self, broker: RedisBroker) -> None:
        self._broker = broker
        self._client = broker.client

    def read(self, queue: str) -> list[DeadLetter]:
        return [letter for _, letter, _ in self._entries(queue)]

    def requeue(self, queue: str, message_ids: Collection[str] | None) -> list[DeadLetter]:
        dead_set, bodies = self._keys(queue)
        sent = []
        for redis_id, letter, message in self._entries(queue):
            if message is None or not _chosen(letter, message_ids):
                continue
            self._broker.enqueue(fresh_copy(message))
            with self._client.pipeline(transaction=True) as pipe:
                pipe.zrem(dead_set, redis_id)
                pipe.hdel(bodies, redis_id)
                pipe.execute()
            sent.append(letter)
        return sent

    def _keys(self, queue: str) -> tuple[str, str]:
        dead_set = f"{self._broker.namespace}:{xq_name(queue)}"
        return dead_set, f"{dead_set}.msgs"

    def _entries(
        self, queue: str
    ) -> Iterator[tuple[bytes, DeadLetter, dramatiq.Message[Any] | None]]:
        dead_set, bodies = self._keys(queue)
        members = cast(
            "list[tuple[bytes, float]]", self._client.zrange(dead_set, 0, -1, withscores=True)
        )
        if not members:
            return
        encoded = self._client.hmget(bodies, [member for member, _ in members])
        for (member, score), body in zip(members, encoded, strict=True):
            if body is None:  # expired by maintenance meanwhile
                continue
            message = _decode(body)
            redis_id = member.decode() if isinstance(member, bytes) else str(member)
            yield member, _letter(queue, message, score / 1000, fallback_id=redis_id), message


class RabbitmqDeadLetters:
    """Dead letters in RabbitMQ: the `<queue>.XQ` queue, read without taking them (every
    message got is given back unless it was requeued)."""

    def __init__(self, broker: Any) -> None:
        self._broker = broker

    def read(self, queue: str) -> list[DeadLetter]:
        with self._got(queue) as (_, got):
            return [letter for _, letter, _ in got]

    def requeue(self, queue: str, message_ids: Collection[str] | None) -> list[DeadLetter]:
        sent = []
        with self._got(queue) as (channel, got):
            for tag, letter, message in got:
                if message is None or not _chosen(letter, message_ids):
                    continue
                self._broker.enqueue(fresh_copy(message))  # confirmed: on the queue by now
                channel.basic_ack(delivery_tag=tag)
                sent.append(letter)
        return sent

    @contextmanager
    def _got(
        self, queue: str
    ) -> Iterator[tuple[Any, list[tuple[int, DeadLetter, dramatiq.Message[Any] | None]]]]:
        """Every dead letter, got unacknowledged; what is not acked goes back at the end."""
        self._broker.declare_queue(queue, ensure=True)
        channel = self._broker.channel
        got = []
        while True:
            method, properties, body = channel.basic_get(xq_name(queue), auto_ack=False)
            if method is None:
                break
            message = _decode(body)
            tag = method.delivery_tag
            letter = _letter(queue, message, _death_time(properties), fallback_id=f"tag-{tag}")
            got.append((tag, letter, message))
        try:
            yield channel, got
        finally:
            if got and channel.is_open:
                channel.basic_nack(delivery_tag=0, multiple=True, requeue=True)


def _chosen(letter: DeadLetter, message_ids: Collection[str] | None) -> bool:
    return message_ids is None or letter.message_id in message_ids


def _decode(body: bytes) -> dramatiq.Message[Any] | None:
    try:
        return dramatiq.Message.decode(body)
    except dramatiq.errors.DecodeError:
        return None


def _letter(
    queue: str, message: dramatiq.Message[Any] | None, dead_since: float | None, *, fallback_id: str
) -> DeadLetter:
    if message is None:
        return DeadLetter(fallback_id, queue, UNDECODABLE, [], {}, 0, dead_since, "")
    traceback = str(message.options.get("traceback") or "").strip()
    return DeadLetter(
        message_id=message.message_id, queue=queue, actor=message.actor_name,
        args=list(message.args), kwargs=dict(message.kwargs),
        retries=int(message.options.get("retries", 0)), dead_since=dead_since,
        error=traceback.splitlines()[-1] if traceback else "",
    )  # fmt: skip


def _death_time(properties: Any) -> float | None:
    """When RabbitMQ dead-lettered the message (its `x-death` header), as Unix time."""
    deaths = (getattr(properties, "headers", None) or {}).get("x-death") or []
    when = deaths[0].get("time") if deaths else None
    if isinstance(when, datetime.datetime):
        if when.tzinfo is None:
            when = when.replace(tzinfo=datetime.UTC)
        return when.timestamp()
    if isinstance(when, int | float):
        return float(when)
    return None
