"""The report job's work: the guide's `process_large_data`, on the order data.

It reads the orders matching the report's parameters in batches (a server-side cursor:
memory stays flat however many there are) and aggregates them in Python. The actor paces it
to take at least REPORT_WORK_SECONDS, the way a real export or analytics job takes seconds.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

import httpx
import psycopg

BATCH = 1000


class TransientJobError(Exception):
    """A failure worth retrying: a dependency, not the job's input."""


def build(
    conn: psycopg.Connection[Any], params: dict[str, Any], *, tips_url: str | None
) -> dict[str, Any]:
    """The report for `params` (`item_prefix`, `since`, `include_tips`)."""
    prefix = params.get("item_prefix") or ""
    since = params.get("since")
    count = quantity = 0
    items: Counter[str] = Counter()
    by_day: Counter[str] = Counter()
    with conn.transaction(), conn.cursor(name="report_orders") as cursor:
        cursor.itersize = BATCH
        cursor.execute(
            "SELECT item, quantity, created_at FROM orders "
            "WHERE item LIKE %s AND (%s::timestamptz IS NULL OR created_at >= %s::timestamptz)",
            (_like_prefix(prefix), since, since),
        )
        for item, amount, created_at in cursor:
            count += 1
            quantity += amount
            items[item] += amount
            by_day[created_at.date().isoformat()] += amount
    report: dict[str, Any] = {
        "orders": count,
        "quantity": quantity,
        "top_items": [{"item": item, "quantity": n} for item, n in items.most_common(10)],
        "quantity_by_day": dict(sorted(by_day.items())),
        "generated_at": datetime.now().astimezone().isoformat(),
    }
    if params.get("include_tips"):
        report["tip"] = _first_tip(tips_url)
    return report


def _like_prefix(prefix: str) -> str:
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


def _first_tip(tips_url: str | None) -> Any:
    if not tips_url:
        raise TransientJobError("no tips upstream configured")
    try:
        response = httpx.get(f"{tips_url}/tips", timeout=2.0)
    except httpx.HTTPError as exc:
        raise TransientJobError(f"tips upstream unreachable: {exc}") from exc
    if response.status_code >= 500:
        raise TransientJobError(f"tips upstream answered {response.status_code}")
    tips = response.json().get("tips") or []
    return tips[0] if tips else None
