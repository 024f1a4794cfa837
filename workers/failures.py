"""Make a job's retries and final failure visible on its row, not only in the broker.

Dramatiq moves a message that exhausted its retries (or was refused as too old) to the
broker's dead-letter queue, where nobody looking at the API would see it. This middleware
writes the outcome on the report the message is about (`report_id` in its kwargs):
`queued` with the error while a retry is pending, `failed` with the reason at the end.
"""

from __future__ import annotations

import logging
from typing import Any

import dramatiq

from workers import db

logger = logging.getLogger(__name__)

_RETRYING = """
UPDATE reports SET status = 'queued', error = %s, updated_at = now()
WHERE id = %s AND status NOT IN ('done', 'failed')
"""
_FAILED = """
UPDATE reports SET status = 'failed', error = %s, updated_at = now()
WHERE id = %s AND status <> 'done'
"""


class RecordFailures(dramatiq.Middleware):
    def __init__(self, database_url: str, *, pool_size: int = 4) -> None:
        self.database_url = database_url
        self.pool_size = pool_size  # the actors' pool: whoever asks first creates it

    def after_process_message(
        self, broker: dramatiq.Broker, message: Any, *, result: Any = None, exception: Any = None
    ) -> None:
        if exception is None:
            return
        reason = f"{type(exception).__name__}: {exception}"
        attempts = _attempts(message)
        if message.failed:
            self._record(message, _FAILED, f"failed after {attempts}: {reason}")
        else:
            self._record(message, _RETRYING, f"{attempts} failed so far, retrying: {reason}")

    def after_skip_message(self, broker: dramatiq.Broker, message: Any) -> None:
        if message.failed:
            self._record(message, _FAILED, "not started before JOBS_MAX_AGE: dropped")

    def _record(self, message: Any, sql: str, reason: str) -> None:
        report_id = message.kwargs.get("report_id")
        if report_id is None:
            return
        try:
            with db.pool(self.database_url, size=self.pool_size).connection() as conn:
                conn.execute(sql, (reason[:2000], report_id))
        except Exception:  # the broker still has the message (retry or dead letter)
            logger.exception("could not record the outcome of report %s", report_id)


def _attempts(message: Any) -> str:
    count = message.options.get("retries", 0)
    return f"{count} attempt{'s' if count != 1 else ''}"
