"""Make a job's retries and final failure visible on its row, not only in the broker.

Dramatiq moves a message that exhausted its retries (or was refused as too old) to the
broker's dead-letter queue, where nobody looking at the API would see it. This middleware
tells the job about the report the message is about (`report_id` in its kwargs): retrying,
with the reason, while a retry is pending; failed, with the reason, at the end.

Callers see a stable, documented reason (`REASONS`), never an exception's own text, which
can carry SQL, hosts or a library's internals: that goes to the worker's log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import dramatiq
import psycopg
from dramatiq.middleware import TimeLimitExceeded

from resilience_async import (
    CircuitOpenError,
    DatabaseUnavailableError,
    ResilienceError,
    SaturatedError,
    UpstreamError,
)

logger = logging.getLogger(__name__)

# Called with the report id and the reason, in the worker thread that ran the message.
Record = Callable[[str, str], None]

# What a caller reads of a failure, by code: the codes are part of the API (docs/jobs.md).
REASONS = {
    "upstream_failed": "the tips upstream failed or answered an error",
    "database_unavailable": "the database could not be reached",
    "dependency_unavailable": "a dependency refused the job for now (its breaker is open)",
    "overloaded": "the worker's own limits were full",
    "time_limit": "the job ran past JOBS_TIME_LIMIT",
    "invalid_parameters": "the report's parameters were refused by the database",
    "too_old": "not started before JOBS_MAX_AGE",
    "internal_error": "the job failed; the worker's log has the details",
}


# Most specific first: the first kind a failure is decides its code.
_CODES: tuple[tuple[type[BaseException], str], ...] = (
    (CircuitOpenError, "dependency_unavailable"),
    (UpstreamError, "upstream_failed"),
    (DatabaseUnavailableError, "database_unavailable"),
    (SaturatedError, "overloaded"),
    (ResilienceError, "dependency_unavailable"),
    (TimeLimitExceeded, "time_limit"),
    (psycopg.DataError, "invalid_parameters"),
    (psycopg.OperationalError, "database_unavailable"),
)


def reason_code(exc: BaseException) -> str:
    """The stable code of a job's failure (a `REASONS` key)."""
    cause = exc.__cause__ if isinstance(exc, dramatiq.Retry) else exc
    return next((code for kind, code in _CODES if isinstance(cause, kind)), "internal_error")


def describe(exc: BaseException) -> str:
    """`code (what it means)`: what the report shows of a failure."""
    code = reason_code(exc)
    return f"{code} ({REASONS[code]})"


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
        reason = describe(exception)
        logger.warning(
            "report job failed: %s", reason,
            extra={"report_id": message.kwargs.get("report_id"),
                   "error": f"{type(exception).__name__}: {exception}"},
        )  # fmt: skip
        attempts = _attempts(message)
        if message.failed:
            self._record(self._failed, message, f"failed after {attempts}: {reason}")
        else:
            self._record(self._retrying, message, f"{attempts} failed so far, retrying: {reason}")

    def after_skip_message(self, broker: dramatiq.Broker, message: Any) -> None:
        if message.failed:
            self._record(self._failed, message, f"too_old ({REASONS['too_old']}): dropped")

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
