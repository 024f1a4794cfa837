"""What the load's records say about each write: ok, definitely refused, or unknown."""

from __future__ import annotations

from typing import Any

import pytest

from loadtests.scenario.invariants import Writes


def order(key: str, status: int, error: str | None = None, order_id: int | None = None,
          attempt: int = 1) -> dict[str, Any]:  # fmt: skip
    return {"endpoint": "order_create", "key": key, "status": status, "error": error,
            "id": order_id, "attempt": attempt}  # fmt: skip


@pytest.mark.parametrize(
    ("answers", "outcome"),
    [
        ([(201, None)], "ok"),
        ([(0, "TimeoutError: timed out"), (201, None)], "ok"),  # a retry with the key landed
        ([(503, "HTTP 503 no_primary")], "failed"),
        ([(422, "HTTP 422 invalid_input")], "failed"),
        ([(503, "HTTP 503 no_primary"), (503, "HTTP 503 database_unavailable")], "failed"),
        ([(503, "HTTP 503 write_outcome_unknown")], "unknown"),
        ([(503, "HTTP 503 no_primary"), (0, "HTTPConnectionClosed: closed")], "unknown"),
        ([(500, "HTTP 500 internal")], "unknown"),
    ],
)
def test_each_order_write_is_classified_from_all_its_attempts(
    answers: list[tuple[int, str | None]], outcome: str
) -> None:
    records = [order("k", status, error, 7 if status == 201 else None, attempt=n)
               for n, (status, error) in enumerate(answers, start=1)]  # fmt: skip
    writes = Writes.from_records(records)
    assert writes.orders == {"k": outcome}
    assert writes.order_ids == ({"k": 7} if outcome == "ok" else {})


def test_only_accepted_reports_are_expected_to_finish() -> None:
    records = [
        {"endpoint": "report_create", "status": 202, "id": "a"},
        {"endpoint": "report_create", "status": 503, "id": None},
        {"endpoint": "report_create", "status": 0, "id": None},
        {"endpoint": "report_poll", "status": 200, "id": "a"},
        {"endpoint": "tips", "status": 200, "id": None},
    ]
    assert Writes.from_records(records).reports == {"a"}
