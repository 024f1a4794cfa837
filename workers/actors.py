"""The actors. A worker runs `dramatiq workers.actors` (Dramatiq's CLI).

Delivery is at least once (a relay may publish twice, a killed worker's message is
redelivered), so every actor is idempotent, keyed by its report id: it claims the report
with a status change that only a queued or running report allows, and writes the result
with one that only a running report allows. A second delivery of a finished report does
nothing, and two copies running at once produce one result.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import dramatiq
import psycopg
from dramatiq.middleware import TimeLimitExceeded
from psycopg.types.json import Jsonb

from project import settings
from workers import db, reports
from workers.broker import make_broker

logger = logging.getLogger(__name__)
broker = make_broker(settings)

_CLAIM = """
UPDATE reports SET status = 'running', attempts = attempts + 1, updated_at = now()
WHERE id = %s AND status IN ('queued', 'running')
RETURNING params
"""
_FINISH = """
UPDATE reports SET status = 'done', result = %s, error = '', updated_at = now()
WHERE id = %s AND status = 'running'
"""


def is_transient(retries: int, exc: BaseException) -> bool:
    """Retry what a later attempt may get past (a dependency failing), never bad input."""
    transient = (reports.TransientJobError, psycopg.OperationalError, TimeLimitExceeded)
    return isinstance(exc, transient) and retries < settings.JOBS_MAX_RETRIES


@dramatiq.actor(queue_name="reports", retry_when=is_transient)
def build_report(report_id: str) -> None:
    """Build report `report_id` once, however often the message arrives."""
    pool = db.pool(settings.DATABASE_URL, size=settings.WORKER_THREADS + 1)
    with pool.connection() as conn:
        row = conn.execute(_CLAIM, (report_id,)).fetchone()
    if row is None:
        logger.info("report %s is finished already: nothing to do", report_id)
        return
    params: dict[str, Any] = row[0] or {}
    started = time.monotonic()
    with pool.connection() as conn:
        result = reports.build(conn, params, tips_url=settings.TIPS_UPSTREAM_URL)
    # Paced like a real export, without holding a connection while it waits.
    time.sleep(max(0.0, settings.REPORT_WORK_SECONDS - (time.monotonic() - started)))
    with pool.connection() as conn:
        finished = conn.execute(_FINISH, (Jsonb(result), report_id)).rowcount
    if not finished:
        logger.info("report %s was finished by another delivery meanwhile", report_id)
