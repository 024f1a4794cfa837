"""What HAProxy did about the instances a scenario killed or restarted, as checks and lines.

The balancer must stop sending to an instance before it stops accepting: within its drain
delay after SIGTERM (it keeps serving that long), and as fast after a SIGKILL (every request
sent meanwhile is refused and must be resent elsewhere).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from devstack.stack import Stack
from devstack.stack.haproxy import DRAIN_DELAY, Admin, HaproxyError


def route_around_check(event: dict[str, Any]) -> dict[str, Any]:
    """An instance fault's check: HAProxy marked it DOWN within the drain delay."""
    down = event["down_after"]
    return {
        "name": f"{event['instance']} DOWN in HAProxy after {event['signal']} ({event['fault']})",
        "measured": "never" if down is None else f"{down:.2f} s",
        "limit": f"{DRAIN_DELAY:g} s",
        "passed": down is not None and down <= DRAIN_DELAY,
        "detail": None,
    }


def describe(events: Iterable[dict[str, Any]]) -> list[str]:
    """One line per instance fault: signal to DOWN, to exit, to UP again."""
    lines = []
    for event in events:
        down = "never" if event["down_after"] is None else f"{event['down_after']:.2f} s"
        lines.append(
            f"  {event['instance']} {event['signal']}: DOWN in HAProxy after {down}, exited "
            f"after {event['exited_after']:.2f} s, UP again after {event['up_after']:.2f} s"
        )
    return lines


def counters(stack: Stack) -> dict[str, int] | None:
    """HAProxy's backend counters after the run: requests resent to another instance
    (`redispatches`) or to the same one (`retries`), and 5xx answers; None without HAProxy."""
    haproxy = stack.services.get("haproxy")
    if haproxy is None:
        return None
    try:
        row = Admin(haproxy["admin_socket"]).backend()
    except HaproxyError:
        return None
    names = {"retries": "wretr", "redispatches": "wredis", "answers_5xx": "hrsp_5xx"}
    return {name: int(row[column] or 0) for name, column in names.items()}
