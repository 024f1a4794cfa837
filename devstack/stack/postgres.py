"""Throw-away PostgreSQL: a primary made by initdb and a streaming replica cloned from it.

Binaries come from `PG_BIN`, else `pg_config --bindir`, else Debian's
`/usr/lib/postgresql/<version>/bin` (newest first). PostgreSQL refuses to run as root, so
under uid 0 every PostgreSQL binary runs as the `postgres` OS user, in directories it owns.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import time
from pathlib import Path

import psycopg

from devstack.stack.child import Child

DATABASE = "app"

# A throw-away cluster: fsync off is safe here (only an OS crash could lose data, and then
# the cluster is thrown away anyway); synchronous_commit stays on, so a killed postmaster
# never loses a commit it acknowledged.
_PRIMARY_CONF = """
listen_addresses = '127.0.0.1'
unix_socket_directories = '{sockets}'
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
hot_standby = on
hot_standby_feedback = on
fsync = off
max_connections = 200
wal_receiver_status_interval = 1s
log_min_messages = warning
log_line_prefix = '%m [%p] '
"""


SYNCHRONOUS_COMMIT_LEVELS = ("local", "on", "remote_apply")


class PostgresError(RuntimeError):
    """PostgreSQL could not be set up or started."""


def find_bindir(configured: str | None) -> Path:
    """The directory holding initdb, postgres and pg_basebackup."""
    candidates: list[str] = []
    if configured:
        candidates.append(configured)
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        candidates.append(out.stdout.strip())
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    for candidate in candidates:
        if candidate and (Path(candidate) / "initdb").is_file():
            return Path(candidate)
    raise PostgresError(
        "PostgreSQL server binaries (initdb, postgres) not found: install them "
        "(Debian: postgresql) or set PG_BIN to their directory"
    )


def _version_key(path: str) -> int:
    version = Path(path).parent.name
    return int(version) if version.isdigit() else 0


def os_user() -> str | None:
    """The OS user PostgreSQL must run as: `postgres` under root, else the current user."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise PostgresError(
            "running as root needs a 'postgres' OS user to run PostgreSQL"
        ) from None
    return "postgres"


def own_dir(path: Path, user: str | None) -> Path:
    """Create `path` owned by `user` (mode 0700, as PostgreSQL demands for data dirs)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if user:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    return path


def run_as(bindir: Path, user: str | None, *argv: str) -> None:
    """Run a PostgreSQL tool to completion; its output becomes the error when it fails."""
    result = subprocess.run(
        [str(bindir / argv[0]), *argv[1:]],
        capture_output=True,
        text=True,
        user=user,
        group=user,
        extra_groups=[] if user else None,
        check=False,
        cwd="/",
    )
    if result.returncode != 0:
        raise PostgresError(f"{argv[0]} failed ({result.returncode}): {result.stderr.strip()}")


def init_primary(bindir: Path, user: str | None, data_dir: Path, sockets: Path) -> None:
    run_as(
        bindir,
        user,
        "initdb",
        "-D",
        str(data_dir),
        "-U",
        "postgres",
        "--auth=trust",
        "-E",
        "UTF8",
        "--locale=C",
        "--no-sync",
        "--no-instructions",
    )
    with (data_dir / "postgresql.conf").open("a") as conf:
        conf.write(_PRIMARY_CONF.format(sockets=sockets))


def clone_replica(
    bindir: Path, user: str | None, primary_port: int, data_dir: Path, slot: str
) -> None:
    """pg_basebackup -R: a hot standby streaming from the primary through a replication slot."""
    run_as(
        bindir,
        user,
        "pg_basebackup",
        "-h",
        "127.0.0.1",
        "-p",
        str(primary_port),
        "-U",
        "postgres",
        "-D",
        str(data_dir),
        "-R",
        "-X",
        "stream",
        "-c",
        "fast",
        "-C",
        "-S",
        slot,
        "--no-sync",
    )


def server(
    name: str,
    *,
    bindir: Path,
    user: str | None,
    data_dir: Path,
    port: int,
    sockets: Path,
    log_path: Path,
) -> Child:
    return Child(
        name=name,
        argv=[str(bindir / "postgres"), "-D", str(data_dir), "-p", str(port), "-k", str(sockets)],
        log_path=log_path,
        user=user,
        cwd=Path("/"),
        stop_signal=signal.SIGINT,  # a fast shutdown (SIGTERM waits for every client to leave)
    )


def url(*ports: int, database: str = DATABASE, read_write: bool = False) -> str:
    hosts = ",".join(f"127.0.0.1:{port}" for port in ports)
    query = "?target_session_attrs=read-write" if read_write else ""
    return f"postgresql://postgres@{hosts}/{database}{query}"


def create_database(port: int) -> None:
    with psycopg.connect(url(port, database="postgres"), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {DATABASE}")


def wait_streaming(primary_port: int, timeout: float = 30.0) -> None:
    """Wait until the primary sees its replica streaming."""
    with psycopg.connect(url(primary_port, database="postgres"), autocommit=True) as conn:
        _wait_for_standby(conn, "state = 'streaming'", timeout, "replica not streaming")


def make_synchronous(primary_port: int, level: str) -> None:
    """Make every standby synchronous: a commit waits for one (`on`: flushed there,
    `remote_apply`: visible there). With the only standby gone, commits wait for ever."""
    with psycopg.connect(url(primary_port, database="postgres"), autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET synchronous_standby_names = '*'")
        conn.execute(f"ALTER SYSTEM SET synchronous_commit = '{level}'")
        conn.execute("SELECT pg_reload_conf()")
        _wait_for_standby(conn, "sync_state = 'sync'", 10, "replica not a synchronous standby")


def _wait_for_standby(conn: psycopg.Connection, condition: str, timeout: float, what: str) -> None:
    """Poll pg_stat_replication until a standby meets `condition` (constant SQL)."""
    deadline = time.monotonic() + timeout
    query = f"SELECT count(*) FROM pg_stat_replication WHERE {condition}"  # noqa: S608
    while time.monotonic() < deadline:
        row = conn.execute(query).fetchone()
        if row and row[0] > 0:
            return
        time.sleep(0.05)
    raise PostgresError(f"{what} after {timeout:.0f} s")


def promote(port: int, timeout: int = 30) -> None:
    """`pg_promote()`: the standby on `port` leaves recovery and accepts writes."""
    with psycopg.connect(url(port, database="postgres"), autocommit=True) as conn:
        row = conn.execute("SELECT pg_promote(true, %s)", (timeout,)).fetchone()
    if not row or not row[0]:
        raise PostgresError(f"the standby on port {port} was not promoted within {timeout} s")
