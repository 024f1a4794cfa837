"""A timeout that also bounds the clean-up its cancellation starts.

Cancelling a psycopg query makes psycopg ask the server to cancel it and wait for the
answer (up to 5 s, then up to 5 s more for the query to end) before the cancellation goes
on. That is right for a slow query on a healthy server, and a hang when the network to the
server swallows packets: nothing answers, and a 2 s query timeout becomes a 12 s wait.
`firm_timeout` cancels once at the deadline (psycopg cancels cleanly when it can), and
again after `grace` seconds; psycopg answers a second cancellation by closing the
connection at once. The caller sees TimeoutError either way.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


@contextlib.asynccontextmanager
async def firm_timeout(seconds: float, grace: float) -> AsyncIterator[None]:
    """Like `asyncio.timeout(seconds)`, but done within `seconds + grace` whatever the
    cancelled code does on its way out."""
    task = asyncio.current_task()
    if task is None:
        raise RuntimeError("firm_timeout needs a task")
    loop = asyncio.get_running_loop()
    cancelling = task.cancelling()
    forced = False

    def force() -> None:
        nonlocal forced
        forced = True
        task.cancel()

    handle = loop.call_later(seconds + grace, force)
    try:
        async with asyncio.timeout(seconds):
            yield
    except asyncio.CancelledError:
        # Our second cancellation, and nobody else's: it is the timeout, finishing late.
        if forced and task.uncancel() <= cancelling:
            raise TimeoutError(f"no answer within {seconds:.2f} s") from None
        raise
    finally:
        handle.cancel()
