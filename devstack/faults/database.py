"""Database faults, each with its undo where there is one: client sessions terminated, WAL
replay paused, a replica promoted; and the replica lag they cause.

Errors name the fault and its target ("pause replay (127.0.0.1:5433/app): not a replica").
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import TupleRow, class_row

from devstack.faults._common import FaultError, check_count, pick

APPLICATION_NAME = "devstack-faults"  # how our own sessions show in pg_stat_activity
CONNECT_TIMEOUT = 3  # seconds (libpq takes whole ones): a paused server must not hang a fault


@dataclass(frozen=True)
class Backend:
    """A PostgreSQL client session, as `pg_stat_activity` showed it."""

    pid: int
    application_name: str
    usename: str | None
    database: str | None
    state: str | None


_CLIENT_BACKENDS = """
SELECT pid, application_name, usename, datname AS database, state FROM pg_stat_activity
WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
  AND datname = coalesce(%(database)s, current_database())
  AND (%(application_name)s::text IS NULL OR application_name LIKE %(application_name)s)
  AND (%(usename)s::text IS NULL OR usename = %(usename)s)
ORDER BY pid
"""


def client_backends(
    url: str,
    *,
    application_name: str | None = None,
    usename: str | None = None,
    database: str | None = None,
) -> list[Backend]:
    """The client sessions of a database (never ours, nor replication or background ones).

    Args:
        application_name: a LIKE pattern (`resilience-%`: the app's pools and monitor).
        database: default: the one `url` names.
    """
    params = {"application_name": application_name, "usename": usename, "database": database}
    with _connect(url, "list backends") as conn:
        return _client_backends(conn, params)


def terminate_backends(
    url: str,
    *,
    count: int | None = 1,
    application_name: str | None = None,
    usename: str | None = None,
    database: str | None = None,
    rng: random.Random | None = None,
) -> list[Backend]:
    """`pg_terminate_backend` on random client sessions: a connection lost under the app, as
    a network blip or a DBA does it. A query running there fails; an idle one is found dead
    at its next use. Never our own session, the replication walsender or autovacuum.

    Args:
        count: how many of those matching; None: every one. Returns those terminated.
    """
    check_count(count)
    params = {"application_name": application_name, "usename": usename, "database": database}
    with _connect(url, "terminate backends") as conn:
        matching = _client_backends(conn, params)
        if not matching:
            like = f" with application_name like {application_name!r}" if application_name else ""
            raise FaultError(f"terminate backends ({_where(url)}): no client session{like}")
        terminate = "SELECT pg_terminate_backend(%s)"
        return [
            backend
            for backend in pick(matching, count, rng)
            if conn.execute(terminate, (backend.pid,)).fetchone() == (True,)
        ]


def _client_backends(
    conn: psycopg.Connection[TupleRow], params: dict[str, str | None]
) -> list[Backend]:
    cursor = conn.cursor(row_factory=class_row(Backend))
    return cursor.execute(_CLIENT_BACKENDS, params).fetchall()


def pause_replay(replica_url: str) -> None:
    """`pg_wal_replay_pause()`: the replica keeps answering but applies no more WAL, so its
    data stays as it is while it lags further behind the primary. Undone by `resume_replay`."""
    with _connect(replica_url, "pause replay") as conn:
        _require_standby(conn, replica_url, "pause replay")
        conn.execute("SELECT pg_wal_replay_pause()")


def resume_replay(replica_url: str) -> None:
    """`pg_wal_replay_resume()`: the replica applies the WAL it kept and catches up."""
    with _connect(replica_url, "resume replay") as conn:
        _require_standby(conn, replica_url, "resume replay")
        conn.execute("SELECT pg_wal_replay_resume()")


@dataclass(frozen=True)
class ReplicaLag:
    """How far a replica's visible data is behind what it has received.

    `seconds`: since the last replayed commit was made on the primary, 0 when nothing
    received is waiting to be replayed; `bytes`: WAL received and not yet replayed.
    """

    seconds: float
    bytes: int
    paused: bool


_LAG = """
SELECT coalesce(pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()), 0),
       coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp()), 0),
       pg_get_wal_replay_pause_state() <> 'not paused'
"""


def replica_lag(replica_url: str) -> ReplicaLag:
    """The replica's replay lag (what a read served there may miss)."""
    with _connect(replica_url, "replica lag") as conn:
        _require_standby(conn, replica_url, "replica lag")
        row = conn.execute(_LAG).fetchone()
    if row is None:
        raise FaultError(f"replica lag ({_where(replica_url)}): no answer")
    behind, since_commit, paused = int(row[0]), float(row[1]), bool(row[2])
    return ReplicaLag(seconds=since_commit if behind > 0 else 0.0, bytes=behind, paused=paused)


def promote(replica_url: str, *, timeout: float = 30.0) -> None:
    """`pg_promote()`, then wait until the server accepts writes: the replica becomes a
    second primary (the old one, if alive, is not fenced). It cannot be undone."""
    deadline = time.monotonic() + timeout
    with _connect(replica_url, "promote") as conn:
        _require_standby(conn, replica_url, "promote")
        row = conn.execute("SELECT pg_promote(true, %s)", (max(1, round(timeout)),)).fetchone()
    if row != (True,):
        raise FaultError(f"promote ({_where(replica_url)}): not promoted within {timeout:g} s")
    while not _accepts_writes(replica_url):
        if time.monotonic() > deadline:
            raise FaultError(f"promote ({_where(replica_url)}): no writes within {timeout:g} s")
        time.sleep(0.05)


def _accepts_writes(url: str) -> bool:
    try:
        with _connect(url, "promote") as conn:
            row = conn.execute("SELECT pg_is_in_recovery() OR current_setting("
                               "'default_transaction_read_only')::bool").fetchone()  # fmt: skip
    except FaultError:
        return False
    return row == (False,)


def _require_standby(conn: psycopg.Connection[TupleRow], url: str, what: str) -> None:
    row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
    if row != (True,):
        raise FaultError(f"{what} ({_where(url)}): not a replica (it accepts writes)")


@contextmanager
def _connect(url: str, what: str) -> Iterator[psycopg.Connection[TupleRow]]:
    """A short autocommit session; any database error becomes a FaultError naming `what`."""
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT,
                             application_name=APPLICATION_NAME) as conn:  # fmt: skip
            yield conn
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FaultError(f"{what} ({_where(url)}): {reason}") from exc


def _where(url: str) -> str:
    """`host:port/dbname` of a libpq URL, for messages (never its password)."""
    try:
        parts = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "an invalid database URL"
    return f"{parts.get('host', '')}:{parts.get('port', '')}/{parts.get('dbname', '')}"
