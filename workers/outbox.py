"""The outbox table as the relay and readiness see it: its SQL and its backlog probe.

A request writes its domain row and an outbox row in one transaction (`app/reports.py`);
the relay (`workers/outbox_relay.py`) publishes unsent rows to the broker and marks them sent.
Readiness reports the backlog of unsent rows, and how long the oldest has waited.
"""

from __future__ import annotations

from collections.abc import Callable

from resilience_async import Connection, Database, Observation, Status

CHANNEL = "outbox"  # NOTIFY'd by the request's transaction when it commits
CLAIM = """
SELECT id, actor, payload FROM outbox WHERE sent_at IS NULL
ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED
"""
MARK_SENT = "UPDATE outbox SET sent_at = now(), attempts = attempts + 1 WHERE id = ANY(%s)"
MARK_FAILED = """
UPDATE outbox SET attempts = attempts + 1, last_error = %s WHERE id = ANY(%s)
"""
# A broker that loses messages (a Redis restarted without its data) must not lose jobs: a
# report still unfinished long after its message was sent gets its message sent again (the
# actors are idempotent, so a copy that was not lost after all costs one skipped run).
REVIVE = """
UPDATE outbox SET sent_at = NULL
FROM reports
WHERE outbox.sent_at < now() - make_interval(secs => %(after)s)
  AND outbox.actor = 'build_report'
  AND reports.id = (outbox.payload ->> 'report_id')::uuid
  AND reports.status IN ('queued', 'running')
  AND reports.updated_at < now() - make_interval(secs => %(after)s)
"""
# Housekeeping, a batch at a time (short locks): messages sent long ago, and idempotency
# keys past their lifetime, would otherwise pile up for ever.
PRUNE_SENT = """
DELETE FROM outbox WHERE id IN (
    SELECT id FROM outbox WHERE sent_at < now() - make_interval(secs => %s) LIMIT 1000
)
"""
PRUNE_KEYS = """
DELETE FROM idempotency_keys WHERE id IN (
    SELECT id FROM idempotency_keys WHERE created_at < now() - make_interval(secs => %s)
    LIMIT 1000
)
"""
_BACKLOG = """
SELECT count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)::float8
FROM outbox WHERE sent_at IS NULL
"""


class BacklogProbe:
    """Readiness probe: messages committed but not yet published, and the oldest one's age.

    A backlog is a warning, never a failure: requests are still accepted (the outbox holds
    their jobs), which is the point of the outbox.

    Args:
        database: where the outbox is read (a replica will do: a backlog is not urgent).
        warn_age: seconds the oldest unsent message may wait before the probe warns.
        on_backlog: told each measured backlog (the service's gauge, for instance).
    """

    def __init__(
        self,
        database: Database,
        *,
        warn_age: float,
        on_backlog: Callable[[int], None] | None = None,
    ) -> None:
        self._database = database
        self._warn_age = warn_age
        self._on_backlog = on_backlog

    async def __call__(self) -> Observation:
        read = await self._database.read(_backlog)
        backlog, oldest = read.value
        if self._on_backlog is not None:
            self._on_backlog(backlog)
        if oldest > self._warn_age:
            output = f"{backlog} message(s) unpublished, the oldest for {oldest:.0f} s"
            return Observation(backlog, "messages", Status.WARN, output)
        return Observation(backlog, "messages")


async def _backlog(conn: Connection) -> tuple[int, float]:
    cursor = await conn.execute(_BACKLOG)
    row = await cursor.fetchone()
    assert row is not None  # an aggregate always returns a row
    return int(row[0]), float(row[1])
