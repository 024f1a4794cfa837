"""The local stack: throw-away PostgreSQL primary + streaming replica, Redis, the demo
upstream and (under `serve`) the web server, each on a free port under one run directory.

`python -m devstack up|down|serve` drive it from a shell; the tests start the same `Stack`.
"""

from __future__ import annotations

from devstack.stack.stack import Stack
from devstack.stack.waits import StackError

__all__ = ["Stack", "StackError"]
