"""The report job: the guide's `process_large_data`, on the order data, idempotent.

Delivery is at least once (a relay may publish twice, a killed worker's message is
redelivered), so the job is keyed by its report id: it claims the report with a status
change that only a queued or running report allows, and writes the result with one that
only a running report allows. A second delivery of a finished report does nothing, and two
copies running at once produce one result.

The orders are read in batches (a server-side cursor: memory stays flat however many
there are) on a replica that has replayed the claim, so the report sees every order
committed before it was requested; the job is paced to take at least `work_seconds`,
the way a real export or analytics job takes seconds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from resilience_async import Connection, Database, ResilientClient

logger = logging.getLogger(__name__)

BATCH = 1000
_CLAIM = """
UPDATE reports SET status = 'running', attempts = attempts + 1, updated_at = now()
WHERE id = %s AND status IN ('queued', 'running')
RETURNING params
"""
_FINISH = """
UPDATE reports SET status = 'done', result = %s, error = '', updated_at = now()
WHERE id = %s AND status = 'running'
"""
_RETRYING = """
UPDATE reports SET status = 'queued', error = %s, updated_at = now()
WHERE id = %s AND status NOT IN ('done', 'failed')
"""
_FAILED = """
UPDATE reports SET status = 'failed', error = %s, updated_at = now()
WHERE id = %s AND status <> 'done'
"""
_ORDERS = """
SELECT item, quantity, created_at FROM orders
WHERE item LIKE %s AND (%s::timestamptz IS NULL OR created_at >= %s::timestamptz)
"""
# A reason is shown through the API: long enough for any error, short enough for a row.
MAX_REASON = 2000


class ReportJob:
    """Builds reports, and records on their rows what became of the jobs that failed.

    Args:
        database: claims and results on the primary, the aggregation on a fresh replica.
        tips: the tips upstream, for reports that include a tip.
        work_seconds: the least time a job takes (paced without holding a connection).
        sleep: awaited to pace the job (a seam for tests).
    """

    def __init__(
        self,
        *,
        database: Database,
        tips: ResilientClient,
        work_seconds: float,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._database = database
        self._tips = tips
        self._work_seconds = work_seconds
        self._sleep = sleep

    async def build(self, report_id: str) -> None:
        """Build report `report_id` once, however often its message arrives."""
        claimed = await self._database.write(lambda conn: _claim(conn, report_id))
        if claimed.value is None:
            logger.info("report %s is finished already: nothing to do", report_id)
            return
        params: dict[str, Any] = claimed.value
        started = time.monotonic()
        read = await self._database.read(lambda conn: aggregate(conn, params), token=claimed.token)
        result = read.value
        if params.get("include_tips"):
            result["tip"] = await self._first_tip()
        await self._sleep(max(0.0, self._work_seconds - (time.monotonic() - started)))
        finished = await self._database.write(lambda conn: _finish(conn, report_id, result))
        if not finished.value:
            logger.info("report %s was finished by another delivery meanwhile", report_id)

    async def mark_retrying(self, report_id: str, reason: str) -> None:
        """Back to `queued`, with why the last attempt failed (a finished report is kept)."""
        await self._database.write(lambda conn: _update(conn, _RETRYING, report_id, reason))

    async def mark_failed(self, report_id: str, reason: str) -> None:
        """`failed`, with the reason (a report already built keeps its result)."""
        await self._database.write(lambda conn: _update(conn, _FAILED, report_id, reason))

    async def _first_tip(self) -> Any:
        body = await self._tips.get_json("/tips")
        tips = body.get("tips") if isinstance(body, dict) else None
        if not isinstance(tips, list):
            raise self._tips.unusable("wrong_shape", "answered JSON without a list of tips")
        return tips[0] if tips else None


async def aggregate(conn: Connection, params: dict[str, Any]) -> dict[str, Any]:
    """The report for `params` (`item_prefix`, `since`) over the orders, in batches."""
    since = params.get("since")
    count = quantity = 0
    items: Counter[str] = Counter()
    by_day: Counter[str] = Counter()
    async with conn.transaction(), conn.cursor(name="report_orders") as cursor:
        cursor.itersize = BATCH
        await cursor.execute(_ORDERS, (like_prefix(params.get("item_prefix") or ""), since, since))
        async for item, amount, created_at in cursor:
            count += 1
            quantity += amount
            items[item] += amount
            by_day[created_at.date().isoformat()] += amount
    return {
        "orders": count,
        "quantity": quantity,
        "top_items": [{"item": item, "quantity": n} for item, n in items.most_common(10)],
        "quantity_by_day": dict(sorted(by_day.items())),
        "generated_at": datetime.now().astimezone().isoformat(),
    }


def like_prefix(prefix: str) -> str:
    """A LIKE pattern matching what starts with `prefix`: its %, _ and \\ taken literally."""
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


async def _claim(conn: Connection, report_id: str) -> dict[str, Any] | None:
    cursor = await conn.execute(_CLAIM, (report_id,))
    row = await cursor.fetchone()
    return None if row is None else (row[0] or {})


async def _finish(conn: Connection, report_id: str, result: dict[str, Any]) -> bool:
    cursor = await conn.execute(_FINISH, (Jsonb(result), report_id))
    return cursor.rowcount > 0


async def _update(conn: Connection, sql: str, report_id: str, reason: str) -> None:
    await conn.execute(sql, (reason[:MAX_REASON], report_id))
