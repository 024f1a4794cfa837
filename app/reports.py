"""Reports: accepted in one transaction with their outbox message, built later by a worker.

The request never talks to the broker: the report row and its outbox row commit together
(one statement), and the relay (`python -m project.relay`) publishes the message. A broker
that is down delays the job; it never fails the request or loses the job.
"""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass
from typing import Any

from psycopg.types.json import Jsonb

from app import idempotency
from app.idempotency import Created
from resilience_async import Connection, Database, ReadResult, WriteResult

ACTOR = "build_report"
_COLUMNS = "id, status, params, result, error, attempts, created_at, updated_at"
# One statement: the report and its message commit together or not at all; the NOTIFY
# wakes the relay when (and only if) the transaction commits.
_CREATE = """
WITH report AS (
    INSERT INTO reports (id, params) VALUES (%s, %s)
    RETURNING id, status, params, result, error, attempts, created_at, updated_at
), message AS (
    INSERT INTO outbox (actor, payload)
    SELECT %s, jsonb_build_object('report_id', id::text) FROM report
)
SELECT report.*, pg_notify('outbox', '') FROM report
"""
_CREATE_WITH_KEY = """
WITH report AS (
    INSERT INTO reports (id, params) VALUES (%(id)s, %(params)s)
    RETURNING id, status, params, result, error, attempts, created_at, updated_at
), message AS (
    INSERT INTO outbox (actor, payload)
    SELECT %(actor)s, jsonb_build_object('report_id', id::text) FROM report
), claimed AS (
    INSERT INTO idempotency_keys (scope, key, fingerprint, resource_id)
    SELECT %(scope)s, %(key)s, %(fingerprint)s, id::text FROM report
)
SELECT report.*, pg_notify('outbox', '') FROM report
"""
SCOPE = "reports"
_SELECT = f"SELECT {_COLUMNS} FROM reports WHERE id = %s"  # noqa: S608 - constant columns


@dataclass(frozen=True, slots=True)
class Report:
    id: uuid.UUID
    status: str
    params: dict[str, Any]
    result: Any
    error: str
    attempts: int
    created_at: datetime.datetime
    updated_at: datetime.datetime

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": str(self.id),
            "status": self.status,
            "params": self.params,
            "attempts": self.attempts,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }
        if self.status == "done":
            body["result"] = self.result
        if self.error:
            body["error"] = self.error
        return body


class ReportService:
    """Reports accepted with their outbox message, read back where the caller's token allows.

    Args:
        database: the service's `Database` (primary and replica pools, routing).
        key_ttl: seconds an idempotency key is remembered.
    """

    def __init__(self, *, database: Database, key_ttl: float) -> None:
        self._database = database
        self._key_ttl = key_ttl

    async def create(
        self, params: dict[str, Any], *, idempotency_key: str | None = None
    ) -> WriteResult[Created[Report]]:
        """Commit the report and its outbox message; the relay takes it from there. With a
        key, at most one report per key and request."""
        if idempotency_key is None:
            return await self._database.write(lambda conn: _insert(conn, params))
        key, ttl = idempotency_key, self._key_ttl
        return await self._database.write(lambda conn: _insert_once(conn, params, key, ttl))

    async def get(self, report_id: uuid.UUID, *, token: str | None) -> ReadResult[Report | None]:
        return await self._database.read(lambda conn: _select(conn, report_id), token=token)


async def _insert(conn: Connection, params: dict[str, Any]) -> Created[Report]:
    cursor = await conn.execute(_CREATE, (uuid.uuid4(), Jsonb(params), ACTOR))
    return Created(_report(await cursor.fetchone()))


async def _insert_once(
    conn: Connection, params: dict[str, Any], key: str, ttl: float
) -> Created[Report]:
    digest = idempotency.fingerprint(params)

    async def insert() -> Report:
        cursor = await conn.execute(_CREATE_WITH_KEY, {
            "id": uuid.uuid4(), "params": Jsonb(params), "actor": ACTOR, "scope": SCOPE,
            "key": key, "fingerprint": digest,
        })  # fmt: skip
        return _report(await cursor.fetchone())

    return await idempotency.create_once(
        conn, scope=SCOPE, key=key, digest=digest, ttl=ttl, insert=insert,
        load=lambda report_id: _select(conn, uuid.UUID(report_id)),
    )  # fmt: skip


def _report(row: Any) -> Report:
    if row is None:
        raise LookupError("the report insert returned no row")
    return Report(*row[:8])


async def _select(conn: Connection, report_id: uuid.UUID) -> Report | None:
    cursor = await conn.execute(_SELECT, (report_id,))
    row = await cursor.fetchone()
    return None if row is None else Report(*row)
