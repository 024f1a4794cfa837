"""The worker side of reports without a broker or a database: which failures are retried,
how an item prefix becomes a LIKE pattern, and what `RecordFailures` writes on the row.

Importing `workers.actors` builds the project's RedisBroker for BROKER_URL; building one
opens no connection, so these tests need no Redis. The database is a fake pool swapped in
for `workers.db.pool`, recording every statement.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import psycopg
import psycopg.errors
import psycopg_pool
import pytest
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import Retries
from dramatiq.middleware.time_limit import TimeLimitExceeded

from project import settings
from workers import actors, failures
from workers.broker import make_broker
from workers.failures import RecordFailures
from workers.reports import TransientJobError, _like_prefix

MAX_RETRIES = settings.JOBS_MAX_RETRIES
REPORT_ID = "5f0b8a52-32b4-4a8a-9d43-3d3c1d7f0e11"


# --- is_transient -------------------------------------------------------------------------

TRANSIENT = [
    TransientJobError("tips upstream unreachable"),
    psycopg.OperationalError("server closed the connection unexpectedly"),
    psycopg.errors.AdminShutdown("terminating connection due to administrator command"),
    psycopg_pool.PoolTimeout("couldn't get a connection after 10.00 sec"),
    TimeLimitExceeded(),
]
TRANSIENT_IDS = ["transient-job-error", "operational", "admin-shutdown", "pool-timeout",
                 "time-limit"]  # fmt: skip

PERMANENT = [
    ValueError("bad params"),
    KeyError("report_id"),
    TypeError("unexpected"),
    LookupError("no report"),
    psycopg.errors.InvalidTimeZoneDisplacementValue("time zone displacement out of range"),
    psycopg.errors.UndefinedTable('relation "orders" does not exist'),
    psycopg.ProgrammingError("syntax error"),
]
PERMANENT_IDS = ["value-error", "key-error", "type-error", "lookup-error", "data-error",
                 "undefined-table", "programming-error"]  # fmt: skip


def test_settings_give_a_retry_limit() -> None:
    """The limit the tests below use is the configured one (5 unless JOBS_MAX_RETRIES says)."""
    assert isinstance(MAX_RETRIES, int)
    assert MAX_RETRIES >= 1


@pytest.mark.parametrize("exc", TRANSIENT, ids=TRANSIENT_IDS)
@pytest.mark.parametrize("retries", range(MAX_RETRIES))
def test_dependency_failures_are_retried_below_the_limit(retries: int, exc: BaseException) -> None:
    """A failing dependency (or a job cut by the time limit) is retried while retries remain."""
    assert actors.is_transient(retries, exc) is True


@pytest.mark.parametrize("exc", TRANSIENT, ids=TRANSIENT_IDS)
@pytest.mark.parametrize("retries", [MAX_RETRIES, MAX_RETRIES + 1, MAX_RETRIES + 100])
def test_dependency_failures_stop_at_the_limit(retries: int, exc: BaseException) -> None:
    """Once JOBS_MAX_RETRIES retries were made, even a transient failure is final."""
    assert actors.is_transient(retries, exc) is False


@pytest.mark.parametrize("exc", PERMANENT, ids=PERMANENT_IDS)
@pytest.mark.parametrize("retries", [0, MAX_RETRIES - 1])
def test_bad_input_and_bugs_are_never_retried(retries: int, exc: BaseException) -> None:
    """A failure another attempt cannot get past (bad data, a bug) is final at once."""
    assert actors.is_transient(retries, exc) is False


def test_the_limit_is_read_when_deciding(monkeypatch: pytest.MonkeyPatch) -> None:
    """is_transient follows settings.JOBS_MAX_RETRIES as it is at the time of the failure."""
    monkeypatch.setattr(settings, "JOBS_MAX_RETRIES", 2)
    exc = TransientJobError("down")
    assert [actors.is_transient(n, exc) for n in range(4)] == [True, True, False, False]


def test_the_actor_uses_is_transient_on_the_reports_queue() -> None:
    """build_report is declared with is_transient as its retry rule, on the reports queue."""
    assert actors.build_report.options["retry_when"] is actors.is_transient
    assert actors.build_report.queue_name == "reports"
    assert actors.broker.get_actor("build_report") is actors.build_report


# --- _like_prefix -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "pattern"),
    [
        ("", "%"),
        ("tea", "tea%"),
        ("50%", "50\\%%"),
        ("a_b", "a\\_b%"),
        ("C:\\", "C:\\\\%"),
        ("\\%", "\\\\\\%%"),  # a backslash then a percent: each escaped on its own
        ("%_\\", "\\%\\_\\\\%"),
        ("__", "\\_\\_%"),
        ("\U0001f375 tea", "\U0001f375 tea%"),
    ],
    ids=["empty", "plain", "percent", "underscore", "backslash", "backslash-percent", "all-three",
         "two-underscores", "unicode"],
)  # fmt: skip
def test_like_prefix_escapes_wildcards_and_the_escape(prefix: str, pattern: str) -> None:
    """%, _ and backslash (LIKE's default escape) are escaped; one trailing % is added."""
    assert _like_prefix(prefix) == pattern


# --- RecordFailures -----------------------------------------------------------------------


@dataclass
class FakeMessage:
    """What the middleware reads of a Dramatiq message (and Retries, for the chain test)."""

    failed: bool = False
    kwargs: dict[str, Any] = field(default_factory=lambda: {"report_id": REPORT_ID})
    options: dict[str, Any] = field(default_factory=dict)
    actor_name: str = "build_report"
    message_id: str = "message-1"

    def fail(self) -> None:
        self.failed = True


class FakeConnection:
    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.executed: list[tuple[str, tuple[Any, ...]]] = []

    def execute(self, sql: str, params: tuple[Any, ...]) -> None:
        if self.error is not None:
            raise self.error
        self.executed.append((sql, params))


class FakePool:
    def __init__(self, conn: FakeConnection, connect_error: Exception | None = None) -> None:
        self.conn = conn
        self.connect_error = connect_error

    @contextmanager
    def connection(self) -> Iterator[FakeConnection]:
        if self.connect_error is not None:
            raise self.connect_error
        yield self.conn


class Database:
    """The fake `workers.db.pool`: hands out one pool and remembers the URLs asked for."""

    def __init__(self, pool: FakePool) -> None:
        self.pool = pool
        self.urls: list[str] = []

    def __call__(self, url: str, **_: Any) -> FakePool:
        self.urls.append(url)
        return self.pool

    @property
    def executed(self) -> list[tuple[str, tuple[Any, ...]]]:
        return self.pool.conn.executed


def install(monkeypatch: pytest.MonkeyPatch, pool: FakePool) -> Database:
    database = Database(pool)
    monkeypatch.setattr(failures.db, "pool", database)
    return database


@pytest.fixture
def database(monkeypatch: pytest.MonkeyPatch) -> Database:
    return install(monkeypatch, FakePool(FakeConnection()))


DB_URL = "postgresql://worker@db.invalid/app"


def record() -> RecordFailures:
    return RecordFailures(DB_URL)


def after_failure(message: FakeMessage, exception: BaseException | None) -> None:
    record().after_process_message(actors.broker, message, exception=exception)


def test_a_success_writes_nothing(database: Database) -> None:
    """No exception: the actor wrote its own result; the middleware touches nothing."""
    record().after_process_message(actors.broker, FakeMessage(), result=None, exception=None)
    assert database.executed == []
    assert database.urls == []


def test_a_failure_with_a_retry_pending_puts_the_report_back_in_the_queue(
    database: Database,
) -> None:
    """failed=False: the report goes back to 'queued', the reason naming the error and attempt."""
    after_failure(FakeMessage(options={"retries": 1}), TransientJobError("tips upstream down"))
    [(sql, params)] = database.executed
    assert sql == failures._RETRYING
    assert "status = 'queued'" in sql
    assert "NOT IN ('done', 'failed')" in sql  # a finished report is never reopened
    reason, report_id = params
    assert reason.startswith("1 attempt failed so far, retrying: ")
    assert reason.endswith(" failed so far, retrying: TransientJobError: tips upstream down")
    assert report_id == REPORT_ID
    assert database.urls == [DB_URL]


@pytest.mark.parametrize("retries", [1, 2])
def test_the_retrying_reason_names_the_attempt_once(database: Database, retries: int) -> None:
    """The reason a retried report shows reads "N attempt(s) failed so far, retrying: ..."."""
    after_failure(FakeMessage(options={"retries": retries}), TransientJobError("down"))
    [(_, (reason, _))] = database.executed
    plural = "s" if retries != 1 else ""
    assert reason == f"{retries} attempt{plural} failed so far, retrying: TransientJobError: down"


def test_a_final_failure_marks_the_report_failed(database: Database) -> None:
    """failed=True: the report is 'failed', the reason saying how many attempts were made."""
    message = FakeMessage(failed=True, options={"retries": MAX_RETRIES + 1})
    after_failure(message, ValueError("bad params"))
    [(sql, params)] = database.executed
    assert sql == failures._FAILED
    assert "status = 'failed'" in sql
    assert "<> 'done'" in sql  # a report already built keeps its result
    assert params == (f"failed after {MAX_RETRIES + 1} attempts: ValueError: bad params", REPORT_ID)


@pytest.mark.parametrize(
    ("options", "attempts"),
    [({}, "0 attempts"), ({"retries": 1}, "1 attempt"), ({"retries": 2}, "2 attempts")],
)
def test_the_attempt_count_is_spelled_out(
    database: Database, options: dict[str, Any], attempts: str
) -> None:
    """One attempt is singular; none recorded yet and several are plural."""
    after_failure(FakeMessage(failed=True, options=options), KeyError("x"))
    [(_, (reason, _))] = database.executed
    assert reason == f"failed after {attempts}: KeyError: 'x'"


def test_a_long_reason_is_cut_to_2000_characters(database: Database) -> None:
    """An exception with a huge message still fits the row's reason, cut at 2000."""
    after_failure(FakeMessage(failed=True, options={"retries": 1}), ValueError("x" * 10_000))
    [(_, (reason, report_id))] = database.executed
    assert len(reason) == 2000
    assert reason.startswith("failed after 1 attempt: ValueError: xxx")
    assert report_id == REPORT_ID


@pytest.mark.parametrize("failed", [False, True])
@pytest.mark.parametrize("kwargs", [{}, {"order_id": 7}], ids=["no-kwargs", "other-kwargs"])
def test_a_message_about_no_report_writes_nothing(
    database: Database, failed: bool, kwargs: dict[str, Any]
) -> None:
    """Without a report_id there is no row to write on, and no connection is asked for."""
    after_failure(FakeMessage(failed=failed, kwargs=kwargs), ValueError("boom"))
    record().after_skip_message(actors.broker, FakeMessage(failed=True, kwargs=kwargs))
    assert database.executed == []
    assert database.urls == []


@pytest.mark.parametrize("failed", [False, True])
@pytest.mark.parametrize(
    "pool",
    [
        FakePool(FakeConnection(psycopg.OperationalError("the database is gone"))),
        FakePool(FakeConnection(), connect_error=psycopg_pool.PoolTimeout("no connection")),
    ],
    ids=["execute-fails", "connection-fails"],
)
def test_a_database_failure_is_logged_not_raised(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, failed: bool,
    pool: FakePool,
) -> None:  # fmt: skip
    """The broker still holds the message: failing to write the row must not break the worker."""
    install(monkeypatch, pool)
    with caplog.at_level(logging.ERROR, logger="workers.failures"):
        after_failure(FakeMessage(failed=failed, options={"retries": 1}), ValueError("boom"))
    [logged] = [r for r in caplog.records if r.name == "workers.failures"]
    assert logged.levelno == logging.ERROR
    assert REPORT_ID in logged.getMessage()
    assert logged.exc_info is not None


def test_a_pool_that_cannot_be_built_is_logged_not_raised(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Even building the pool failing (a bad URL, say) stays inside the middleware."""

    def broken(url: str, **_: Any) -> FakePool:
        raise psycopg.OperationalError(f"cannot connect to {url}")

    monkeypatch.setattr(failures.db, "pool", broken)
    with caplog.at_level(logging.ERROR, logger="workers.failures"):
        record().after_skip_message(actors.broker, FakeMessage(failed=True))
    assert any(REPORT_ID in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)


def test_a_message_dropped_for_age_marks_the_report_failed(database: Database) -> None:
    """AgeLimit fails and skips a message too old to start: the row says so, naming the setting."""
    record().after_skip_message(actors.broker, FakeMessage(failed=True))
    [(sql, (reason, report_id))] = database.executed
    assert sql == failures._FAILED
    assert "JOBS_MAX_AGE" in reason
    assert report_id == REPORT_ID


def test_a_skip_that_is_not_a_failure_writes_nothing(database: Database) -> None:
    """A skipped message that was not failed (another middleware's skip) is left alone."""
    record().after_skip_message(actors.broker, FakeMessage(failed=False))
    assert database.executed == []


# --- RecordFailures behind Dramatiq's Retries, in the project's broker --------------------


@pytest.fixture
def requeued(monkeypatch: pytest.MonkeyPatch) -> list[tuple[FakeMessage, int | None]]:
    """The project's broker with enqueue captured: a retry is recorded, Redis is never used."""
    sent: list[tuple[FakeMessage, int | None]] = []
    monkeypatch.setattr(
        actors.broker, "enqueue", lambda message, *, delay=None: sent.append((message, delay))
    )
    return sent


def test_the_project_broker_runs_record_failures_after_retries() -> None:
    """RecordFailures is listed before Retries, so its "after" hook runs after Retries' one."""
    kinds = [type(middleware) for middleware in actors.broker.middleware]
    assert kinds.index(RecordFailures) < kinds.index(Retries)


def test_a_transient_failure_through_the_broker_is_requeued_and_recorded_as_queued(
    database: Database, requeued: list[tuple[FakeMessage, int | None]]
) -> None:
    """Retries decides first (a retry, via is_transient); the row then says 'queued'."""
    message = FakeMessage()
    actors.broker.emit_after("process_message", message, exception=TransientJobError("down"))
    assert [m for m, _ in requeued] == [message]
    assert message.failed is False
    [(sql, (reason, _))] = database.executed
    assert sql == failures._RETRYING
    assert reason.startswith("1 attempt failed so far, retrying: ")
    assert reason.endswith(" failed so far, retrying: TransientJobError: down")


def test_the_last_transient_failure_through_the_broker_is_recorded_as_failed(
    database: Database, requeued: list[tuple[FakeMessage, int | None]]
) -> None:
    """With JOBS_MAX_RETRIES retries made, Retries gives up and the row says 'failed'."""
    message = FakeMessage(options={"retries": MAX_RETRIES})
    actors.broker.emit_after("process_message", message, exception=TransientJobError("down"))
    assert requeued == []
    assert message.failed is True
    [(sql, (reason, _))] = database.executed
    assert sql == failures._FAILED
    assert reason == f"failed after {MAX_RETRIES + 1} attempts: TransientJobError: down"


def test_a_permanent_failure_through_the_broker_fails_at_once(
    database: Database, requeued: list[tuple[FakeMessage, int | None]]
) -> None:
    """Bad input is not retried: first attempt, straight to 'failed'."""
    message = FakeMessage()
    actors.broker.emit_after("process_message", message, exception=ValueError("bad params"))
    assert requeued == []
    assert message.failed is True
    [(sql, (reason, _))] = database.executed
    assert sql == failures._FAILED
    assert reason == "failed after 1 attempt: ValueError: bad params"


def _broker_settings(url: str) -> SimpleNamespace:
    return SimpleNamespace(
        BROKER_URL=url, DATABASE_URL="postgresql://u@127.0.0.1:1/x", WORKER_THREADS=2,
        JOBS_MAX_AGE=60.0, JOBS_TIME_LIMIT=30.0, JOBS_MIN_BACKOFF=0.5, JOBS_MAX_BACKOFF=8.0,
        JOBS_MAX_RETRIES=3, JOBS_HEARTBEAT_TIMEOUT=10.0, JOBS_MAINTENANCE_CHANCE=0.1,
    )  # fmt: skip


def test_a_redis_broker_url_gets_the_tuned_heartbeat_and_maintenance() -> None:
    """Redelivery after a worker dies is bounded by these two: they come from the settings."""
    broker = make_broker(_broker_settings("redis://127.0.0.1:1/1"))
    assert isinstance(broker, RedisBroker)
    assert broker.heartbeat_timeout == 10_000
    assert broker.maintenance_chance == 100_000  # of 1,000,000 commands: 10 %
    retries = next(m for m in broker.middleware if isinstance(m, Retries))
    assert (retries.max_retries, retries.min_backoff, retries.max_backoff) == (3, 500, 8000)


def test_an_amqp_broker_url_gets_rabbitmq() -> None:
    from dramatiq.brokers.rabbitmq import RabbitmqBroker

    broker = make_broker(_broker_settings("amqp://guest:guest@127.0.0.1:1/"))
    assert isinstance(broker, RabbitmqBroker)


def test_another_broker_url_is_refused_naming_the_scheme() -> None:
    with pytest.raises(ValueError, match="'kafka'"):
        make_broker(_broker_settings("kafka://127.0.0.1:9092"))
