"""The outbox relay: publishes committed outbox rows to the broker, then marks them sent.

    python -m project.relay     (its composition root: project/relay.py)

A request writes its domain row and an outbox row in one transaction and never talks to
the broker; this process does. Each round locks a batch of unsent rows with
`FOR UPDATE SKIP LOCKED` (so several relays share the work and never take the same row),
publishes them, and marks them sent in the same transaction. If the broker is down the
transaction rolls back, the rows wait, and the relay retries with a growing pause; if the
commit fails after publishing, the rows are published again later, which the idempotent
actors absorb. New rows wake it at once (`NOTIFY outbox`, sent by the request's
transaction); otherwise it polls every `RELAY_INTERVAL`.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import dramatiq
import psycopg

from workers import actors, outbox

logger = logging.getLogger("workers.outbox_relay")

MAX_PAUSE = 5.0


class Relay:
    """Moves outbox rows to the broker.

    Args:
        database_url: the primary (multi-host with target_session_attrs=read-write is fine).
        broker: where messages go (no actor need be declared on it).
        batch: rows per transaction.
        interval: seconds between polls when no notification arrives.
        republish_after: seconds after which a message whose report is still unfinished
            (and untouched) is presumed lost by the broker and published again.
        keep_sent: seconds a published message is kept (then deleted).
        key_ttl: seconds an idempotency key is kept (then deleted).
        name: recorded in the logs (several relays may run).
    """

    def __init__(self, database_url: str, broker: dramatiq.Broker, *, batch: int = 100,
                 interval: float = 1.0, republish_after: float = 300.0,
                 keep_sent: float = 7 * 86400.0, key_ttl: float = 86400.0,
                 name: str = "relay") -> None:  # fmt: skip
        self.database_url = database_url
        self.broker = broker
        self.batch = batch
        self.interval = interval
        self.republish_after = republish_after
        self.keep_sent = keep_sent
        self.key_ttl = key_ttl
        self._next_revival = 0.0
        self.name = name
        self._conn: psycopg.Connection[Any] | None = None

    def run(self, stop: threading.Event) -> None:
        """Relay until `stop` is set; every failure is logged and retried, never fatal."""
        pause = self.interval
        listener: psycopg.Connection[Any] | None = None
        while not stop.is_set():
            try:
                if listener is None:
                    listener = self._listen()
                self._housekeeping()
                while self.publish_batch() == self.batch and not stop.is_set():
                    pass  # a full batch: there may be more right away
                pause = self.interval
                self._wait(listener, stop)
            except Exception as exc:
                logger.warning("%s: %s; retrying in %.1f s", self.name, _first_line(exc), pause)
                if listener is not None:
                    listener.close()
                    listener = None
                stop.wait(pause)
                pause = min(pause * 2, MAX_PAUSE)
        if listener is not None:
            listener.close()
        self._disconnect()

    def publish_batch(self) -> int:
        """Publish up to `batch` unsent rows in one transaction; how many were published."""
        conn = self._connection()
        rows: list[Any] = []
        try:
            with conn.transaction():
                rows = conn.execute(outbox.CLAIM, (self.batch,)).fetchall()
                for outbox_id, actor, payload in rows:
                    self.broker.enqueue(actors.message(actor, payload, outbox_id=outbox_id))
                if rows:
                    conn.execute(outbox.MARK_SENT, ([row[0] for row in rows],))
        except psycopg.Error:
            self._disconnect()
            raise
        except Exception as exc:  # the broker refused: the rows stay unsent, noted
            conn.execute(outbox.MARK_FAILED, (_first_line(exc)[:500], [row[0] for row in rows]))
            raise
        if rows:
            logger.info("%s published %d message(s)", self.name, len(rows))
        return len(rows)

    def _housekeeping(self) -> None:
        """At most every tenth of `republish_after`: publish again what the broker lost,
        delete what is kept no longer."""
        now = time.monotonic()
        if now < self._next_revival:
            return
        self._next_revival = now + self.republish_after / 10
        conn = self._connection()
        revived = conn.execute(outbox.REVIVE, {"after": self.republish_after}).rowcount
        if revived:
            logger.warning("%s: %d job(s) unfinished %.0f s after publishing: publishing again",
                           self.name, revived, self.republish_after)  # fmt: skip
        pruned = conn.execute(outbox.PRUNE_SENT, (self.keep_sent,)).rowcount
        pruned += conn.execute(outbox.PRUNE_KEYS, (self.key_ttl,)).rowcount
        if pruned:
            logger.info("%s: %d old message(s) and key(s) deleted", self.name, pruned)

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.database_url, autocommit=True, connect_timeout=2,
                                         application_name=f"resilience-{self.name}")  # fmt: skip
        return self._conn

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _listen(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(self.database_url, autocommit=True, connect_timeout=2)
        conn.execute(f"LISTEN {outbox.CHANNEL}")
        return conn

    def _wait(self, listener: psycopg.Connection[Any], stop: threading.Event) -> None:
        """Until a notification, the poll interval, or `stop` (checked at least every 0.5 s)."""
        deadline = time.monotonic() + self.interval
        while not stop.is_set() and (left := deadline - time.monotonic()) > 0:
            for _ in listener.notifies(timeout=min(left, 0.5), stop_after=1):
                return


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
