"""The worker side of reports without a broker or a database: which failures are retried,
how an item prefix becomes a LIKE pattern, what `RecordFailures` reports, how the roots
wire the broker. The actors themselves run in process in tests/integration/test_worker.py.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import dramatiq
import psycopg
import psycopg.errors
import pytest
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import Retries
from dramatiq.middleware.time_limit import TimeLimitExceeded

from project.relay import RelayRoot
from project.worker import WorkerRoot
from resilience_async import (
    CircuitOpenError,
    DatabaseUnavailableError,
    InvalidLsnError,
    NoPrimaryError,
    PoolExhaustedError,
    UpstreamStatusError,
    UpstreamTimeoutError,
)
from tests.helpers import project_settings
from workers import actors
from workers.broker import make_broker
from workers.failures import REASONS, RecordFailures, describe, reason_code
from workers.middleware import DaemonAsyncIO, OpenResources
from workers.reports import like_prefix

REPORT_ID = "5f0b8a52-32b4-4a8a-9d43-3d3c1d7f0e11"

# --- which failures are retried -----------------------------------------------------------

TRANSIENT = [
    DatabaseUnavailableError("replica-1", "server closed the connection unexpectedly"),
    NoPrimaryError("connection refused"),
    PoolExhaustedError("primary", 2.0),
    CircuitOpenError("tips-upstream", 30.0),
    UpstreamStatusError("tips-upstream", 503),
    UpstreamTimeoutError("tips-upstream", "gave no answer in time"),
    dramatiq.Retry("circuit open", delay=1000),
    psycopg.OperationalError("server closed the connection unexpectedly"),
    TimeLimitExceeded(),
]
TRANSIENT_IDS = ["database-unavailable", "no-primary", "pool-exhausted", "circuit-open",
                 "upstream-503", "upstream-timeout", "retry", "operational",
                 "time-limit"]  # fmt: skip

PERMANENT = [
    ValueError("bad params"),
    KeyError("report_id"),
    TypeError("unexpected"),
    InvalidLsnError("not an LSN"),
    psycopg.errors.InvalidDatetimeFormat("invalid input syntax for type timestamp"),
    psycopg.errors.UndefinedTable('relation "orders" does not exist'),
    psycopg.ProgrammingError("syntax error"),
]
PERMANENT_IDS = ["value-error", "key-error", "type-error", "invalid-lsn", "data-error",
                 "undefined-table", "programming-error"]  # fmt: skip


@pytest.mark.parametrize("exc", TRANSIENT, ids=TRANSIENT_IDS)
def test_dependency_failures_are_retried_below_the_limit(exc: BaseException) -> None:
    """A failing dependency (or a job cut by the time limit) is retried while retries remain."""
    retry_when = actors.retry_rule(3)
    assert [retry_when(retries, exc) for retries in range(5)] == [True, True, True, False, False]


@pytest.mark.parametrize("exc", PERMANENT, ids=PERMANENT_IDS)
def test_bad_input_and_bugs_are_never_retried(exc: BaseException) -> None:
    """A failure another attempt cannot get past (bad data, a bug) is final at once."""
    assert actors.retry_rule(3)(0, exc) is False


async def test_an_open_breaker_asks_for_a_retry_when_it_lets_calls_through() -> None:
    """CircuitOpenError becomes dramatiq.Retry with its retry_after as the delay (ms)."""

    async def job(report_id: str) -> None:
        raise CircuitOpenError("database-primary", 2.5)

    with pytest.raises(dramatiq.Retry) as retry:
        await actors.waiting_for_breakers(job)(report_id=REPORT_ID)
    assert retry.value.delay == 2500
    assert isinstance(retry.value.__cause__, CircuitOpenError)


def test_declared_actors_run_on_the_given_broker_with_the_retry_rule() -> None:
    broker = StubBroker(middleware=[Retries()])

    async def build(report_id: str) -> None: ...

    declared = actors.declare(broker, build_report=build, max_retries=4)
    assert broker.get_actor("build_report") is declared.build_report
    assert declared.build_report.queue_name == "reports"
    retry_when = declared.build_report.options["retry_when"]
    down = NoPrimaryError("down")
    assert (retry_when(3, down), retry_when(4, down)) == (True, False)


def test_a_message_by_actor_name_goes_to_its_queue() -> None:
    message = actors.message("build_report", {"report_id": REPORT_ID}, outbox_id=7)
    assert (message.queue_name, message.actor_name) == ("reports", "build_report")
    assert (message.kwargs, message.options) == ({"report_id": REPORT_ID}, {"outbox_id": 7})
    with pytest.raises(KeyError):
        actors.message("no_such_actor", {})


# --- like_prefix -------------------------------------------------------------------------


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
    assert like_prefix(prefix) == pattern


# --- RecordFailures -----------------------------------------------------------------------


@dataclass
class FakeMessage:
    """What the middleware reads of a Dramatiq message."""

    failed: bool = False
    kwargs: dict[str, Any] = field(default_factory=lambda: {"report_id": REPORT_ID})
    options: dict[str, Any] = field(default_factory=dict)


class Recorded:
    """The two callbacks RecordFailures is given, keeping what they were told."""

    def __init__(self, error: Exception | None = None) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self.error = error

    def retrying(self, report_id: str, reason: str) -> None:
        self._keep("retrying", report_id, reason)

    def failed(self, report_id: str, reason: str) -> None:
        self._keep("failed", report_id, reason)

    def _keep(self, verdict: str, report_id: str, reason: str) -> None:
        if self.error is not None:
            raise self.error
        self.calls.append((verdict, report_id, reason))

    def middleware(self) -> RecordFailures:
        return RecordFailures(retrying=self.retrying, failed=self.failed)


@pytest.fixture
def recorded() -> Recorded:
    return Recorded()


def after_failure(recorded: Recorded, message: FakeMessage, exc: BaseException | None) -> None:
    recorded.middleware().after_process_message(StubBroker(), message, exception=exc)


def test_a_success_records_nothing(recorded: Recorded) -> None:
    """No exception: the job wrote its own result; the middleware reports nothing."""
    after_failure(recorded, FakeMessage(), None)
    assert recorded.calls == []


@pytest.mark.parametrize(("retries", "attempts"), [(0, "0 attempts"), (1, "1 attempt"),
                                                   (2, "2 attempts")])  # fmt: skip
def test_a_failure_with_a_retry_pending_is_recorded_as_retrying(
    recorded: Recorded, retries: int, attempts: str
) -> None:
    """failed=False: "N attempt(s) failed so far, retrying: <reason>"."""
    after_failure(recorded, FakeMessage(options={"retries": retries}), NoPrimaryError("down"))
    reason = f"{attempts} failed so far, retrying: {describe(NoPrimaryError('down'))}"
    assert recorded.calls == [("retrying", REPORT_ID, reason)]


def test_a_final_failure_is_recorded_as_failed(recorded: Recorded) -> None:
    after_failure(recorded, FakeMessage(failed=True, options={"retries": 3}), ValueError("bad"))
    reason = f"failed after 3 attempts: internal_error ({REASONS['internal_error']})"
    assert recorded.calls == [("failed", REPORT_ID, reason)]


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (UpstreamStatusError("tips-upstream", 503), "upstream_failed"),
        (UpstreamTimeoutError("tips-upstream", "gave no answer in time"), "upstream_failed"),
        (NoPrimaryError("connection refused"), "database_unavailable"),
        (DatabaseUnavailableError("replica-1", "lost"), "database_unavailable"),
        (psycopg.OperationalError("server closed the connection"), "database_unavailable"),
        (CircuitOpenError("database-primary", 1.0), "dependency_unavailable"),
        (dramatiq.Retry("later", delay=1000), "internal_error"),
        (PoolExhaustedError("primary", 2.0), "overloaded"),
        (TimeLimitExceeded(), "time_limit"),
        (psycopg.errors.InvalidDatetimeFormat("invalid input syntax"), "invalid_parameters"),
        (ValueError("a bug"), "internal_error"),
    ],
    ids=lambda value: value if isinstance(value, str) else type(value).__name__,
)
def test_each_failure_has_a_stable_reason_and_no_internals(exc: BaseException, code: str) -> None:
    """What a caller reads is a documented code and its meaning, never the exception's text
    (which may carry SQL, hosts or a library's internals)."""
    assert reason_code(exc) == code
    assert describe(exc) == f"{code} ({REASONS[code]})"
    assert str(exc) not in describe(exc) or not str(exc)


async def test_a_retry_asked_by_an_open_breaker_is_described_by_its_cause() -> None:
    async def job() -> None:
        raise CircuitOpenError("tips", 3.0)

    with pytest.raises(dramatiq.Retry) as retry:
        await actors.waiting_for_breakers(job)()
    assert reason_code(retry.value) == "dependency_unavailable"


@pytest.mark.parametrize("failed", [False, True])
@pytest.mark.parametrize("kwargs", [{}, {"order_id": 7}], ids=["no-kwargs", "other-kwargs"])
def test_a_message_about_no_report_records_nothing(
    recorded: Recorded, failed: bool, kwargs: dict[str, Any]
) -> None:
    after_failure(recorded, FakeMessage(failed=failed, kwargs=kwargs), ValueError("boom"))
    recorded.middleware().after_skip_message(StubBroker(), FakeMessage(failed=True, kwargs=kwargs))
    assert recorded.calls == []


def test_a_message_dropped_for_age_is_recorded_as_failed(recorded: Recorded) -> None:
    """AgeLimit fails and skips a message too old to start: the row says so, naming the setting."""
    recorded.middleware().after_skip_message(StubBroker(), FakeMessage(failed=True))
    assert recorded.calls == [("failed", REPORT_ID, f"too_old ({REASONS['too_old']}): dropped")]
    assert "JOBS_MAX_AGE" in REASONS["too_old"]


def test_a_skip_that_is_not_a_failure_records_nothing(recorded: Recorded) -> None:
    recorded.middleware().after_skip_message(StubBroker(), FakeMessage(failed=False))
    assert recorded.calls == []


@pytest.mark.parametrize("failed", [False, True])
def test_a_failure_to_record_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture, failed: bool
) -> None:
    """The broker still holds the message: failing to write the row must not break the worker."""
    broken = Recorded(error=NoPrimaryError("the database is gone"))
    with caplog.at_level(logging.ERROR, logger="workers.failures"):
        after_failure(broken, FakeMessage(failed=failed, options={"retries": 1}), ValueError("x"))
    [logged] = [r for r in caplog.records if r.name == "workers.failures"]
    assert REPORT_ID in logged.getMessage()
    assert logged.exc_info is not None


# --- RecordFailures behind Retries, as the worker's root wires them ---------------------


def test_the_worker_root_orders_its_middleware() -> None:
    """AsyncIO's loop runs before resources open and after they close; RecordFailures sees
    Retries' verdict ("after" hooks run in reverse)."""
    root = WorkerRoot(project_settings(), broker=StubBroker(middleware=[]))
    kinds = [type(middleware) for middleware in root.broker.middleware]
    assert kinds.index(DaemonAsyncIO) < kinds.index(OpenResources)
    assert kinds.index(RecordFailures) < kinds.index(Retries)
    assert root.broker.get_actor("build_report") is root.actors.build_report


def chain(recorded: Recorded, max_retries: int) -> StubBroker:
    """A StubBroker with RecordFailures before Retries and the actor declared."""
    broker = StubBroker(middleware=[recorded.middleware(), Retries(max_retries=max_retries)])

    async def build(report_id: str) -> None: ...

    actors.declare(broker, build_report=build, max_retries=max_retries)
    return broker


def requeued(broker: StubBroker) -> list[str]:
    """Ids of the messages Retries put back (on the delay queue, for their backoff)."""
    queue = broker.queues["reports.DQ"]
    return [dramatiq.Message.decode(data).message_id for data in list(queue.queue)]


def emit_failure(broker: StubBroker, exc: BaseException, retries: int = 0) -> dramatiq.Message:
    message = actors.message("build_report", {"report_id": REPORT_ID}, retries=retries)
    proxy = dramatiq.broker.MessageProxy(message)  # what a worker hands the middleware
    broker.emit_after("process_message", proxy, exception=exc)
    return proxy


def test_a_transient_failure_is_requeued_and_recorded_as_retrying(recorded: Recorded) -> None:
    broker = chain(recorded, max_retries=2)
    proxy = emit_failure(broker, NoPrimaryError("down"))
    assert requeued(broker) == [proxy.message_id]
    assert proxy.failed is False
    [(verdict, _, reason)] = recorded.calls
    assert (verdict, reason.split(":")[0]) == ("retrying", "1 attempt failed so far, retrying")


def test_the_last_transient_failure_is_recorded_as_failed(recorded: Recorded) -> None:
    broker = chain(recorded, max_retries=2)
    proxy = emit_failure(broker, NoPrimaryError("down"), retries=2)
    assert (requeued(broker), proxy.failed) == ([], True)
    [(verdict, _, reason)] = recorded.calls
    assert (verdict, reason.split(":")[0]) == ("failed", "failed after 3 attempts")


def test_a_permanent_failure_fails_at_once(recorded: Recorded) -> None:
    broker = chain(recorded, max_retries=2)
    proxy = emit_failure(broker, ValueError("bad params"))
    assert (requeued(broker), proxy.failed) == ([], True)
    assert recorded.calls == [
        (
            "failed",
            REPORT_ID,
            f"failed after 1 attempt: internal_error ({REASONS['internal_error']})",
        )
    ]


# --- brokers ----------------------------------------------------------------------------


def test_a_redis_broker_url_gets_the_tuned_heartbeat_and_maintenance() -> None:
    """Redelivery after a worker dies is bounded by these two: they come from the settings."""
    broker = make_broker("redis://127.0.0.1:1/1", heartbeat_timeout=10.0, maintenance_chance=0.1)
    assert isinstance(broker, RedisBroker)
    assert broker.heartbeat_timeout == 10_000
    assert broker.maintenance_chance == 100_000  # of 1,000,000 commands: 10 %


def test_the_worker_root_builds_its_broker_from_the_project_settings() -> None:
    root = WorkerRoot(project_settings(BROKER_URL="redis://127.0.0.1:1/1", JOBS_MAX_RETRIES=3,
                               JOBS_MIN_BACKOFF=0.5, JOBS_MAX_BACKOFF=8.0))  # fmt: skip
    assert isinstance(root.broker, RedisBroker)
    retries = next(m for m in root.broker.middleware if isinstance(m, Retries))
    assert (retries.max_retries, retries.min_backoff, retries.max_backoff) == (3, 500, 8000)


def test_an_amqp_broker_url_gets_rabbitmq_confirming_each_publish() -> None:
    """The relay marks a row sent once RabbitMQ confirmed the message, not before."""
    root = RelayRoot(project_settings(BROKER_URL="amqp://guest:guest@127.0.0.1:1/"))
    assert isinstance(root.broker, RabbitmqBroker)
    assert root.broker.confirm_delivery is True


def test_another_broker_url_is_refused_naming_the_scheme() -> None:
    with pytest.raises(ValueError, match="'kafka'"):
        make_broker("kafka://127.0.0.1:9092")
