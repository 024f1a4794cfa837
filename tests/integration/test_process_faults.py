"""Process and database faults against the real stack: PostgreSQL primary + replica, Redis,
and a real uvicorn server; each test heals what it broke."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import psycopg
import pytest
import redis
from psycopg.conninfo import make_conninfo

from devstack.faults import FaultError, database, signals
from devstack.stack import Stack
from loadtests.scenario.timeline import TimedFault, Timeline
from tests.helpers import wait_for
from tests.servers import migrate, run_web

pytestmark = [pytest.mark.integration, pytest.mark.beside_scenarios]


def url(stack: Stack, name: str, database: str = "app") -> str:
    return make_conninfo(stack.services[name]["url"], dbname=database)


@pytest.fixture
def replay(healthy_stack: Stack) -> Iterator[str]:
    """The replica's URL; replay is resumed after the test, whatever it did."""
    replica = url(healthy_stack, "replica")
    try:
        yield replica
    finally:
        database.resume_replay(replica)


def walsender(primary: str) -> tuple[int, str] | None:
    with psycopg.connect(primary, autocommit=True) as conn:
        row = conn.execute("SELECT pid, state FROM pg_stat_replication").fetchone()
    return (row[0], row[1]) if row else None


def test_terminate_backends_drops_another_clients_live_connection(healthy_stack: Stack) -> None:
    """The chosen session is gone (its next query fails); a session not matching lives on."""
    primary, name = url(healthy_stack, "primary"), f"victim-{uuid.uuid4().hex[:8]}"
    with (
        psycopg.connect(primary, autocommit=True, application_name=name) as victim,
        psycopg.connect(primary, autocommit=True, application_name="bystander") as bystander,
    ):
        victim_pid = victim.info.backend_pid
        killed = database.terminate_backends(primary, application_name=f"{name}%")
        assert [(b.pid, b.application_name, b.database) for b in killed] == [
            (victim_pid, name, "app")
        ]
        with pytest.raises(psycopg.OperationalError):
            victim.execute("SELECT 1")
        assert bystander.execute("SELECT 1").fetchone() == (1,)


def test_terminate_backends_never_hits_the_walsender_nor_its_own_session(
    healthy_stack: Stack,
) -> None:
    """Terminating every client session of the database leaves replication streaming."""
    primary = url(healthy_stack, "primary")
    before = walsender(primary)
    assert before is not None
    assert before[1] == "streaming"
    with psycopg.connect(primary, autocommit=True, application_name="bystander") as other:
        killed = database.terminate_backends(primary, count=None)
        assert other.info.backend_pid in {b.pid for b in killed}
    assert database.APPLICATION_NAME not in {b.application_name for b in killed}
    assert walsender(primary) == before


def test_terminate_backends_with_no_match_says_so(healthy_stack: Stack) -> None:
    """Nothing to terminate is an error naming the server and the filter, not a no-op."""
    port = healthy_stack.services["primary"]["port"]
    with pytest.raises(FaultError, match=rf"127.0.0.1:{port}/app\): no client session with"):
        database.terminate_backends(url(healthy_stack, "primary"), application_name="nobody-%")
    with pytest.raises(ValueError, match="count: at least 1"):
        database.terminate_backends(url(healthy_stack, "primary"), count=0)


def test_paused_replay_hides_new_rows_until_resumed(healthy_stack: Stack, replay: str) -> None:
    """A row committed on the primary reaches the replica but is not visible there until
    replay resumes; the lag probe sees the pause and the unapplied WAL."""
    primary = url(healthy_stack, "primary", "postgres")
    replica = make_conninfo(replay, dbname="postgres")
    note = uuid.uuid4().hex
    with psycopg.connect(primary, autocommit=True) as writer:
        writer.execute("CREATE TABLE IF NOT EXISTS fault_replay_probe (note text)")
    with psycopg.connect(replica, autocommit=True) as reader:
        wait_for(lambda: reader.execute("SELECT to_regclass('fault_replay_probe')").fetchone()[0])
        database.pause_replay(replay)
        with psycopg.connect(primary, autocommit=True) as writer:
            writer.execute("INSERT INTO fault_replay_probe VALUES (%s)", (note,))
            written = writer.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
        received = "SELECT pg_last_wal_receive_lsn() >= %s::pg_lsn"
        wait_for(lambda: reader.execute(received, (written,)).fetchone()[0])
        visible = "SELECT count(*) FROM fault_replay_probe WHERE note = %s"
        assert reader.execute(visible, (note,)).fetchone() == (0,)
        lag = database.replica_lag(replay)
        assert lag.paused
        assert lag.bytes > 0
        database.resume_replay(replay)
        wait_for(lambda: reader.execute(visible, (note,)).fetchone() == (1,))
    assert not database.replica_lag(replay).paused


def test_replica_faults_refuse_a_primary(healthy_stack: Stack) -> None:
    """Pausing replay or measuring lag on a primary is an error naming it."""
    primary = url(healthy_stack, "primary")
    with pytest.raises(FaultError, match=r"^pause replay \(127.0.0.1:\d+/app\): not a replica"):
        database.pause_replay(primary)
    with pytest.raises(FaultError, match=r"^replica lag .*: not a replica"):
        database.replica_lag(primary)


def test_promote_makes_the_replica_accept_writes(healthy_stack: Stack, tmp_path: Path) -> None:
    """After promote() returns, the former replica takes writes (on a database of its own)."""
    external = {name: healthy_stack.env[name] for name in ("REDIS_URL", "TIPS_UPSTREAM_URL")}
    with Stack(state_dir=tmp_path / "state", external=external) as db:
        migrate(db.env)
        replica = url(db, "replica")
        database.promote(replica)
        with psycopg.connect(replica, autocommit=True) as conn:
            conn.execute("CREATE TABLE promoted (id int)")
        with pytest.raises(FaultError, match=r"^promote .*: not a replica"):
            database.promote(replica)


def test_undo_all_after_a_failing_undo_still_heals_the_others(
    healthy_stack: Stack, replay: str
) -> None:
    """Redis paused and replay paused, with a failing undo between them: the timeline's
    undo_all resumes both and reports the one that failed."""
    redis_pid = healthy_stack.services["redis"]["pid"]
    gone = 2**22 + 1
    faults = {
        "pause redis": (lambda: signals.pause(redis_pid, name="redis"),
                        lambda: signals.resume(redis_pid, name="redis")),
        "kill a gone process": (lambda: None, lambda: signals.kill(gone, name="x")),
        "pause replay": (lambda: database.pause_replay(replay),
                         lambda: database.resume_replay(replay)),
    }  # fmt: skip

    def apply(fault: TimedFault) -> Callable[[], None]:
        do, undo = faults[fault.name]
        do()
        return undo

    timeline = Timeline([at_start(name) for name in faults], apply, t0=time.time(), run_end=60)
    timeline.run(threading.Event())
    assert database.replica_lag(replay).paused
    assert timeline.undo_all() == [f"undo failed: kill x (pid {gone}): no such process"]
    assert not database.replica_lag(replay).paused
    with redis.Redis.from_url(healthy_stack.env["REDIS_URL"], socket_timeout=2) as client:
        assert client.ping()


def at_start(name: str) -> TimedFault:
    return SimpleNamespace(name=name, kind="test", target="x", start=0.0, duration=None,
                           params={})  # type: ignore[return-value]  # fmt: skip


def test_kill_worker_processes_of_uvicorn_leaves_it_serving(
    healthy_stack: Stack, tmp_path: Path
) -> None:
    """One uvicorn worker killed: the supervisor lives, starts another, and keeps serving."""
    with run_web(healthy_stack, tmp_path, workers=2) as web:
        workers = wait_for(lambda: len(w := signals.worker_processes(web.child.pid)) == 2 and w)
        killed = signals.kill_worker_processes(web.child.pid, name="web", count=1)
        assert len(killed) == 1
        assert killed[0] in workers
        assert web.child.alive()

        def replaced() -> bool:
            now = signals.worker_processes(web.child.pid)
            return len(now) == 2 and killed[0] not in now

        wait_for(replaced)
        assert web.get("/health/live").status_code == 200
