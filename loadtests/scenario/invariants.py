"""The invariants, checked Jepsen-style against the databases once the run has settled.

Every write the load made is classified from what the client saw: `ok` (an order answered
201/200, a report answered 202), `failed` (every attempt definitely refused: 4xx, or a 503
other than `write_outcome_unknown`, which the service answers only before anything is
written), or `unknown` (no answer, a 503 `write_outcome_unknown` (the connection was lost
during the commit), or another 5xx: it may or may not have happened). Then the final
primary is asked:

- orders lost: ok orders that do not exist (an acknowledged write must survive any fault);
- orders phantom: failed orders that exist (a refusal must mean nothing happened);
- reports lost: accepted reports that are not `done` with a result (each accepted job
  runs to the end, once: the job's claim and finish statements only allow one result).

Unknown writes may land either way; how they landed is reported, not judged.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg

OK_STATUSES = frozenset({200, 201})
REPORT_ACCEPTED = 202
UNKNOWN_OUTCOME = "write_outcome_unknown"  # the service's code for a commit it lost track of


@dataclass
class Writes:
    """What the load's records say about each write."""

    orders: dict[str, str] = field(default_factory=dict)  # idempotency key -> outcome
    order_ids: dict[str, int] = field(default_factory=dict)  # key -> id, for ok orders
    reports: set[str] = field(default_factory=set)  # accepted report ids

    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, Any]]) -> Writes:
        attempts: dict[str, list[tuple[int, str]]] = defaultdict(list)
        writes = cls()
        for record in records:
            endpoint, status = record.get("endpoint"), int(record.get("status") or 0)
            if endpoint == "order_create" and record.get("key"):
                key = str(record["key"])
                attempts[key].append((status, str(record.get("error") or "")))
                if status in OK_STATUSES and record.get("id") is not None:
                    writes.order_ids[key] = int(record["id"])
            elif endpoint == "report_create" and status == REPORT_ACCEPTED and record.get("id"):
                writes.reports.add(str(record["id"]))
        for key, statuses in attempts.items():
            writes.orders[key] = _outcome(statuses)
        return writes


def _outcome(answers: list[tuple[int, str]]) -> str:
    """ok, failed or unknown, from every attempt's (status, error text)."""
    if any(status in OK_STATUSES for status, _ in answers):
        return "ok"
    if all(_refused(status, error) for status, error in answers):
        return "failed"
    return "unknown"


def _refused(status: int, error: str) -> bool:
    return 400 <= status < 500 or (status == 503 and UNKNOWN_OUTCOME not in error)


def wait_for_reports(primary_url: str, report_ids: set[str], timeout: float) -> int:
    """Wait until no accepted report is queued or running; how many still are at the end."""
    deadline = time.monotonic() + timeout
    pending = len(report_ids)
    while report_ids:
        with psycopg.connect(primary_url, connect_timeout=5) as conn:
            row = conn.execute(
                "SELECT count(*) FROM reports WHERE id = ANY(%s::uuid[])"
                " AND status IN ('queued', 'running')",
                (sorted(report_ids),),
            ).fetchone()
        pending = int(row[0]) if row else 0
        if pending == 0 or time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    return pending


def check(writes: Writes, primary_url: str, limits: Mapping[str, int]) -> list[dict[str, Any]]:
    """The invariant verdicts: name, measured, limit, passed, detail."""
    with psycopg.connect(primary_url, connect_timeout=5) as conn:
        keys = sorted(writes.orders)
        stored = dict(
            conn.execute(
                "SELECT key, resource_id FROM idempotency_keys"
                " WHERE scope = 'orders' AND key = ANY(%s)",
                (keys,),
            ).fetchall()
        )
        ids = [int(v) for v in stored.values()] + list(writes.order_ids.values())
        existing = {row[0] for row in conn.execute(
            "SELECT id FROM orders WHERE id = ANY(%s)", (ids,)
        ).fetchall()}  # fmt: skip
        rows = conn.execute(
            "SELECT id, status, result IS NOT NULL, attempts FROM reports"
            " WHERE id = ANY(%s::uuid[])",
            (sorted(writes.reports),),
        ).fetchall()
    reports = {str(row[0]): (row[1], row[2]) for row in rows}
    rerun = sum(1 for row in rows if row[3] > 1)

    outcomes = writes.orders
    lost = [k for k, o in outcomes.items() if o == "ok" and writes.order_ids.get(k) not in existing]
    phantom = [k for k, o in outcomes.items() if o == "failed" and k in stored]
    unknown = [k for k, o in outcomes.items() if o == "unknown"]
    unknown_written = sum(1 for k in unknown if k in stored)
    unfinished = [r for r in writes.reports if reports.get(r) != ("done", True)]
    counts = {o: sum(1 for v in outcomes.values() if v == o) for o in ("ok", "failed", "unknown")}
    return [
        _verdict(
            "orders_lost", lost, limits.get("orders_lost", 0),
            f"{counts['ok']} acknowledged, {len(lost)} missing on the final primary"
            + _examples(lost),
        ),
        _verdict(
            "orders_phantom", phantom, limits.get("orders_phantom", 0),
            f"{counts['failed']} refused, {len(phantom)} exist anyway; {counts['unknown']}"
            f" unknown ({unknown_written} written, {len(unknown) - unknown_written} not)"
            + _examples(phantom),
        ),
        _verdict(
            "reports_lost", unfinished, limits.get("reports_lost", 0),
            f"{len(writes.reports)} accepted, {len(unfinished)} not done: "
            + _states(unfinished, reports) + f"; {rerun} claimed more than once",
        ),
    ]  # fmt: skip


def _verdict(name: str, bad: list[str], limit: int, detail: str) -> dict[str, Any]:
    return {"name": name, "measured": len(bad), "limit": limit, "passed": len(bad) <= limit,
            "detail": detail}  # fmt: skip


def _examples(keys: list[str]) -> str:
    return f" (e.g. {', '.join(sorted(keys)[:3])})" if keys else ""


def _states(ids: list[str], reports: dict[str, tuple[str, bool]]) -> str:
    by_state: dict[str, int] = defaultdict(int)
    for report_id in ids:
        by_state[reports[report_id][0] if report_id in reports else "missing"] += 1
    return ", ".join(f"{n} {state}" for state, n in sorted(by_state.items())) or "none"
