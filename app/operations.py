"""What operators see of the jobs' data, and the one thing they do to it: run failed
reports again.

Sync, on Django's connection (the primary): its callers are `manage.py` commands and admin
actions, which Django runs in a thread. The web's async path never comes here.

A failed report goes back to `queued` with a new outbox message in one statement, as a
request creates one: the relay publishes it, nothing is lost if the broker is down, and the
job, keyed by the report's status, builds it once however many copies arrive.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from django.db import connection, transaction

from app.reports import ACTOR

_BACKLOG = """
SELECT actor, count(*), EXTRACT(EPOCH FROM now() - min(created_at))::float8,
       count(*) FILTER (WHERE attempts > 0),
       (array_agg(last_error ORDER BY id DESC) FILTER (WHERE last_error <> ''))[1]
FROM outbox WHERE sent_at IS NULL GROUP BY actor ORDER BY actor
"""
_REPORT_COLUMNS = """
id::text, status, attempts, error, created_at, updated_at,
EXTRACT(EPOCH FROM now() - updated_at)::float8, count(*) OVER ()
"""
_STUCK = f"""
SELECT {_REPORT_COLUMNS} FROM reports
WHERE status IN ('queued', 'running') AND updated_at < now() - make_interval(secs => %s)
ORDER BY updated_at LIMIT %s
"""  # noqa: S608 - constant columns
_FAILED = f"""
SELECT {_REPORT_COLUMNS} FROM reports WHERE status = 'failed'
ORDER BY updated_at DESC LIMIT %s
"""  # noqa: S608 - constant columns
_STATUSES = "SELECT id::text, status FROM reports WHERE id = ANY(%s) FOR UPDATE"
# Back to queued with a new message, committed together; NOTIFY wakes the relay on commit.
_REQUEUE = """
WITH requeued AS (
    UPDATE reports SET status = 'queued', error = '', updated_at = now()
    WHERE status = 'failed' AND (%(all)s OR id = ANY(%(ids)s))
    RETURNING id
), message AS (
    INSERT INTO outbox (actor, payload)
    SELECT %(actor)s, jsonb_build_object('report_id', id::text) FROM requeued
)
SELECT id::text, pg_notify('outbox', '') FROM requeued ORDER BY id
"""


@dataclass(frozen=True, slots=True)
class ActorBacklog:
    """Unpublished outbox messages for one actor."""

    actor: str
    messages: int
    oldest_seconds: float
    failed_publishes: int  # messages the broker refused at least once
    last_error: str | None


@dataclass(frozen=True, slots=True)
class Backlog:
    """Every unpublished outbox message, per actor."""

    actors: list[ActorBacklog]

    @property
    def messages(self) -> int:
        return sum(each.messages for each in self.actors)

    @property
    def oldest_seconds(self) -> float:
        return max((each.oldest_seconds for each in self.actors), default=0.0)

    def to_json(self) -> dict[str, Any]:
        return {
            "messages": self.messages,
            "oldest_seconds": self.oldest_seconds,
            "actors": [asdict(each) for each in self.actors],
        }


@dataclass(frozen=True, slots=True)
class ReportRow:
    id: str
    status: str
    attempts: int
    error: str
    created_at: datetime
    updated_at: datetime
    idle_seconds: float  # since the report last changed

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class Reports:
    """Up to a limit of the reports that match, and how many match in all."""

    total: int
    reports: list[ReportRow]

    def to_json(self) -> dict[str, Any]:
        return {"total": self.total, "reports": [each.to_json() for each in self.reports]}


@dataclass(frozen=True, slots=True)
class Requeued:
    """Reports sent back to `queued`, and those asked for that were not failed."""

    requeued: list[str]
    refused: dict[str, str]  # id -> why ("done", "running", "no such report"...)

    def to_json(self) -> dict[str, Any]:
        return {"requeued": self.requeued, "refused": self.refused}


def outbox_backlog() -> Backlog:
    """The messages committed but not yet published, per actor."""
    with connection.cursor() as cursor:
        cursor.execute(_BACKLOG)
        return Backlog([ActorBacklog(*row) for row in cursor.fetchall()])


def stuck_reports(older_than: float, *, limit: int) -> Reports:
    """Queued or running reports unchanged for more than `older_than` seconds, oldest first."""
    return _reports(_STUCK, (older_than, limit))


def failed_reports(*, limit: int) -> Reports:
    """Failed reports, the latest first."""
    return _reports(_FAILED, (limit,))


def requeue_failed(ids: Sequence[uuid.UUID] | None) -> Requeued:
    """Run the failed reports among `ids` (None: every failed report) again, through the
    outbox. In a caller's transaction, rolling it back undoes it all (when some were
    `refused`, say)."""
    chosen = list(ids or ())
    with transaction.atomic(), connection.cursor() as cursor:
        statuses: dict[str, str] = {}
        if chosen:
            cursor.execute(_STATUSES, (chosen,))
            statuses = dict(cursor.fetchall())
        cursor.execute(_REQUEUE, {"all": ids is None, "ids": chosen, "actor": ACTOR})
        requeued = [row[0] for row in cursor.fetchall()]
    refused = {
        str(each): statuses.get(str(each), "no such report")
        for each in chosen
        if statuses.get(str(each)) != "failed"
    }
    return Requeued(requeued, refused)


def _reports(sql: str, params: tuple[float | int, ...]) -> Reports:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    total = rows[0][-1] if rows else 0
    return Reports(total, [ReportRow(*row[:-1]) for row in rows])
