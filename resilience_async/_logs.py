"""Structured logging: a request id carried by a context variable, JSON or console lines.

The request id is set once per request (by the middleware) in a `ContextVar`, so every log
line written while serving that request, in any module, carries it without passing it around.
"""

from __future__ import annotations

import json
import logging
import time
from contextvars import ContextVar

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)


class Throttle:
    """Counts events and lets one log line through per `interval` seconds, with the count:
    junk input or an overload can't flood the log."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._counted = 0
        self._next = 0.0

    def count(self) -> int:
        """Count one event: the events since the last line if one is due now, else 0."""
        self._counted += 1
        now = time.monotonic()
        if now < self._next:
            return 0
        self._next = now + self.interval
        counted, self._counted = self._counted, 0
        return counted


# Attributes every LogRecord has; anything else was passed with `extra=` and is logged as a field.
_STANDARD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "request_id",
    "color_message",
    "taskName",
}


class RequestIdFilter(logging.Filter):
    """Stamps each record with the current request id (None outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


def _extra_fields(record: logging.LogRecord) -> dict[str, object]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD_ATTRS}


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers; extra fields become top-level keys."""

    def __init__(self, service: str = "") -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        # Extras first: a field passed with `extra=` never hides the record's own keys.
        entry: dict[str, object] = _extra_fields(record)
        entry |= {
            "ts": _iso_time(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if self._service:
            entry["service"] = self._service
        request_id = getattr(record, "request_id", None)
        if request_id:
            entry["request_id"] = request_id
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class ConsoleFormatter(logging.Formatter):
    """Readable lines for a terminal: time, level, logger, message, then key=value extras."""

    def format(self, record: logging.LogRecord) -> str:
        fields = _extra_fields(record)
        request_id = getattr(record, "request_id", None)
        if request_id:
            fields = {"request_id": request_id, **fields}
        extras = " ".join(f"{key}={value}" for key, value in fields.items())
        line = (
            f"{time.strftime('%H:%M:%S', time.localtime(record.created))} "
            f"{record.levelname:<7} {record.name}: {record.getMessage()}"
        )
        if extras:
            line = f"{line}  {extras}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


def _iso_time(created: float) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{seconds}.{int(created % 1 * 1000):03d}Z"
