"""What a requeued dead letter carries, and what the brokers' dead letters are read from."""

from __future__ import annotations

import datetime
from types import SimpleNamespace

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker

from workers.dead_letters import _death_time, dead_letters, fresh_copy


def test_a_requeued_copy_starts_afresh_as_the_same_message() -> None:
    """Same id, actor and arguments; no retry count, traceback or Redis id; a new
    timestamp (AgeLimit would drop the old one); the queue itself, not its delay queue."""
    dead = dramatiq.Message(
        queue_name="reports.DQ", actor_name="build_report", args=(), kwargs={"report_id": "r1"},
        options={"retries": 5, "traceback": "Traceback...", "redis_message_id": "x",
                 "eta": 1, "requeue_timestamp": 2, "outbox_id": 42},
        message_timestamp=1,
    )  # fmt: skip
    copy = fresh_copy(dead)

    assert (copy.message_id, copy.actor_name, copy.kwargs) == (dead.message_id, "build_report",
                                                                {"report_id": "r1"})  # fmt: skip
    assert copy.queue_name == "reports"
    assert copy.options == {"outbox_id": 42}
    assert copy.message_timestamp > dead.message_timestamp


def test_rabbitmqs_death_time_is_read_from_x_death() -> None:
    """RabbitMQ's `x-death` header says when; pika's naive datetime is UTC."""
    # pika decodes an AMQP timestamp as a naive datetime in UTC.
    when = datetime.datetime(2025, 1, 2, 3, 4, 5, tzinfo=datetime.UTC).replace(tzinfo=None)
    properties = SimpleNamespace(headers={"x-death": [{"time": when, "reason": "rejected"}]})

    assert _death_time(properties) == when.replace(tzinfo=datetime.UTC).timestamp()
    assert _death_time(SimpleNamespace(headers={"x-death": [{"time": 1_700_000_000}]})) == 1.7e9
    assert _death_time(SimpleNamespace(headers=None)) is None


def test_only_redis_and_rabbitmq_keep_dead_letters() -> None:
    """Another broker is refused by name, not read as if it had none."""
    with pytest.raises(TypeError, match="no dead letters to read on a StubBroker"):
        dead_letters(StubBroker(middleware=[]))
