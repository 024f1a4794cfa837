"""RFC 9457 problem details: each of the library's errors answered without its driver text,
and logged once per kind of failure, not once per request."""

from __future__ import annotations

import json
import logging

import pytest

from resilience_async import (
    BulkheadFullError,
    CallTimeoutError,
    CircuitOpenError,
    DatabaseUnavailableError,
    FallbackUnavailableError,
    InvalidLsnError,
    NoPrimaryError,
    PoolExhaustedError,
    ResilienceError,
    UpstreamStatusError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
    WriteOutcomeUnknownError,
)
from resilience_async.django import _errors as errors_module
from resilience_async.django import answered, error_response, problem_response
from tests.helpers import assert_problem

DRIVER_TEXT = 'connection to server at "10.1.2.3", port 5433 failed: Connection refused'

# Each error as the library raises it, and what a caller is told.
TOLD: list[tuple[ResilienceError, int, str, str]] = [
    (NoPrimaryError(DRIVER_TEXT), 503, "dependency_unavailable",
     "the primary database is unreachable"),
    (DatabaseUnavailableError("replica-1", DRIVER_TEXT), 503, "dependency_unavailable",
     "the replica-1 database is unreachable"),
    (DatabaseUnavailableError("servers", "no server can serve this read"), 503,
     "dependency_unavailable", "no database server can serve this read"),
    (WriteOutcomeUnknownError("primary", DRIVER_TEXT), 503, "write_outcome_unknown",
     "the write was interrupted on the primary database and may have committed; "
     "retry it with the same Idempotency-Key"),
    (CircuitOpenError("database-primary", 0.4), 503, "dependency_unavailable",
     "database-primary is unavailable (circuit open)"),
    (CallTimeoutError("tips", 2.0), 503, "dependency_unavailable", "tips did not answer in time"),
    (UpstreamUnavailableError("tips", f"unreachable: {DRIVER_TEXT}"), 503, "dependency_failed",
     "the upstream tips failed"),
    (UpstreamTimeoutError("tips", "timed out after 2.00 s"), 503, "dependency_failed",
     "the upstream tips did not answer in time"),
    (UpstreamStatusError("tips", 502), 503, "dependency_failed", "the upstream tips failed"),
    (BulkheadFullError("tips", 8), 503, "overloaded", "too many calls in flight (tips)"),
    (PoolExhaustedError("primary", 2.0), 503, "overloaded",
     "no connection to primary became free in time"),
    (FallbackUnavailableError("tips"), 503, "dependency_unavailable",
     "no value for tips is available"),
    (InvalidLsnError("not an LSN: 'x'"), 400, "invalid_consistency_token",
     "not a consistency token returned by a write"),
]  # fmt: skip


@pytest.mark.parametrize(("error", "status", "code", "detail"), TOLD,
                         ids=[type(told[0]).__name__ for told in TOLD])  # fmt: skip
def test_each_error_tells_the_dependency_and_its_state_never_the_driver(
    error: ResilienceError, status: int, code: str, detail: str
) -> None:
    response = error_response(error)
    assert response.status_code == status
    assert response["Content-Type"] == "application/problem+json"
    field = "X-Consistency-Token" if status == 400 else None
    problem = assert_problem(json.loads(response.content), status, field)
    assert (problem["code"], problem["detail"]) == (code, detail)
    assert "10.1.2.3" not in response.content.decode()
    assert "5433" not in response.content.decode()
    if status == 503:
        assert int(response["Retry-After"]) >= 1


def test_answered_logs_the_full_error_once_per_kind_with_the_count(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hundred refused writes and a hundred open-circuit reads: one warning each, holding
    the driver's text for the operator; none at ERROR."""
    monkeypatch.setattr(errors_module, "_throttles", {})
    caplog.set_level(logging.INFO)
    for _ in range(100):
        answered(NoPrimaryError(DRIVER_TEXT))
        answered(CircuitOpenError("tips", 1.0))
    warnings = [r for r in caplog.records if r.name == "resilience_async.django.errors"]
    assert [r.levelno for r in warnings] == [logging.WARNING, logging.WARNING]
    assert DRIVER_TEXT in warnings[0].getMessage()
    assert "circuit 'tips' is open" in warnings[1].getMessage()
    assert [r.levelno for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_a_problem_is_not_logged_per_request_by_django() -> None:
    """Answers given on purpose are marked for Django's log_response, which then skips them."""
    response = problem_response(422, "invalid", "quantity must be an integer", field="quantity")
    assert response._has_been_logged is True  # type: ignore[attr-defined]
    assert_problem(json.loads(response.content), 422, "quantity")
