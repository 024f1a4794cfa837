"""One JSON line per request, appended to this process's records file.

Analysis and the invariant checks read these, not locust's stats: they need every request's
intended time, status, idempotency key and the id it created. Lines are buffered in memory and
written in one call per flush, at least once a second (the runner tails the files for its
progress line); no fsync, a crash of the load generator loses at most the last second.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO


@dataclass(frozen=True, slots=True)
class Record:
    """What one request did. Times are unix seconds.

    Args:
        endpoint: tips, order_create, order_read, report_create or report_poll.
        intended: when the schedule meant it to be sent.
        sent: when it was sent (later than intended when the user fell behind).
        end: when the answer (or the error) came.
        status: the HTTP status, 0 when there was no response.
        error: a short text when something failed, else None.
        key: the Idempotency-Key of an order_create.
        attempt: 1, then 2, 3... for an order_create retried with the same key.
        id: the order id (int) or report id (str) created, read or polled.
    """

    endpoint: str
    intended: float
    sent: float
    end: float
    status: int
    error: str | None = None
    key: str | None = None
    attempt: int = 1
    id: int | str | None = None

    @property
    def latency(self) -> float:
        """Seconds from the intended send time, not from the actual one: no coordinated
        omission."""
        return self.end - self.intended

    def line(self) -> str:
        return json.dumps({
            "endpoint": self.endpoint,
            "intended": self.intended,
            "sent": self.sent,
            "end": self.end,
            "latency": self.latency,
            "status": self.status,
            "error": self.error,
            "key": self.key,
            "attempt": self.attempt,
            "id": self.id,
        })  # fmt: skip


def records_path(records_dir: Path, *, host: str | None = None, pid: int | None = None) -> Path:
    """`<records_dir>/<hostname>-<pid>.jsonl`: one file per locust process."""
    host = host if host is not None else socket.gethostname()
    return records_dir / f"{host}-{pid if pid is not None else os.getpid()}.jsonl"


class RecordsWriter:
    """Appends records to `path`, buffered until `flush()`.

    Args:
        path: the JSON-lines file; its directory is created on `open()`.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._pending: list[str] = []
        self._file: TextIO | None = None

    def open(self) -> None:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")

    def add(self, record: Record) -> None:
        self._pending.append(record.line())

    def flush(self) -> None:
        """Write what is pending in one call and hand it to the OS (no fsync)."""
        if self._file is None:
            raise RuntimeError(f"records file {self.path} is not open")
        if self._pending:
            lines, self._pending = self._pending, []
            self._file.write("\n".join(lines) + "\n")
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self.flush()
            self._file.close()
            self._file = None
