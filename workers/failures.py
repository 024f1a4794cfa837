"""Make a job's retries and final failure visible on its row, not only in the broker.

Dramatiq moves a message that exhausted its retries (or was refused as too old) to the
broker's dead-letter queue, where nobody looking at the API would see it. This middleware
tells the job about the report the message is about (`report_id` in its kwargs): retrying,
with the error, while a retry is pending; failed, with the reason, at the end.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import dramatiq

logger = logging.getLogger(__name__)

# Called with the report id and the reason, in the worker thread that ran the message.
Record = Callable[[str, str], None]


class RecordFailures(dramatiq.Middleware):
    """Reports a failed message's outcome through `retrying` or `failed`.

    List it before `Retries`: "after" hooks run in reverse order, so it sees the verdict
    Retries reached (a retry pending, or the message failed for good).

    Args:
        retrying: records that the report's job will run again.
        failed: records that the report's job failed for good.
    """

    def __init__(self, *, retrying: Record, failed: Record) -> None:
        self._retrying = retrying
        self._failed = failed

    def after_process_message(
        self, broker: dramatiq.Broker, message: Any, *, result: Any = None, exception: Any = None
    ) -> None:
        if exception is None:
            return
        reason = f"{type(exception).__name__}: {exception}"
        attempts = _attempts(message)
        if message.failed:
            self._record(self._failed, message, f"failed after {attempts}: {reason}")
        else:
            self._record(self._retrying, message, f"{attempts} failed so far, retrying: {reason}")

    def after_skip_message(self, broker: dramatiq.Broker, message: Any) -> None:
        if message.failed:
            self._record(self._failed, message, "not started before JOBS_MAX_AGE: dropped")

    def _record(self, record: Record, message: Any, reason: str) -> None:
        report_id = message.kwargs.get("report_id")
        if report_id is None:
            return
        try:
            record(report_id, reason)
        except Exception:  # the broker still has the message (retry or dead letter)
            logger.exception("could not record the outcome of report %s", report_id)


def _attempts(message: Any) -> str:
    count = message.options.get("retries", 0)
    return f"{count} attempt{'s' if count != 1 else ''}"
