"""Request signals dispatched without a thread hand-off when none is needed.

Django's `Signal.asend` runs every sync receiver through `sync_to_async`, and the ASGI
handler sends `request_started` and `request_finished` on every request: a thread per
request. Django's own receivers do not need one:

- `reset_queries` and `close_old_connections` tend the database connections of the thread
  that ran sync code during the request. The ORM refuses to run on the event loop, so a
  request that never entered `sync_to_async` opened none: for it they have nothing to do.
- `close_caches` and `reset_urlconf` act on context-local state and run on the loop.

Any other sync receiver (a third-party app's, say) still runs in a thread, as in Django;
async receivers are awaited on the loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.core.cache import close_caches
from django.core.handlers.base import reset_urlconf
from django.db import close_old_connections, reset_queries
from django.dispatch import Signal

_THREAD_BOUND = frozenset({reset_queries, close_old_connections})
_LOOP_SAFE = frozenset({close_caches, reset_urlconf})


async def send_request_signal(
    signal: Signal, sender: type, *, sync_thread_used: bool, **named: Any
) -> None:
    """Send `signal` like `Signal.asend`, leaving the loop only for receivers that need it.

    Args:
        sync_thread_used: whether this request ran sync code in its thread-sensitive thread.
    """
    sync_receivers, async_receivers = signal._live_receivers(sender)
    if sync_thread_used:
        threaded, on_loop = list(sync_receivers), []
    else:
        threaded = [r for r in sync_receivers if r not in _THREAD_BOUND | _LOOP_SAFE]
        on_loop = [r for r in sync_receivers if r in _LOOP_SAFE]
    for receiver in on_loop:
        receiver(signal=signal, sender=sender, **named)
    if threaded:
        await sync_to_async(_call_each)(threaded, signal, sender, named)
    if async_receivers:
        await asyncio.gather(*(r(signal=signal, sender=sender, **named) for r in async_receivers))


def _call_each(
    receivers: list[Callable[..., Any]], signal: Signal, sender: type, named: dict[str, Any]
) -> None:
    for receiver in receivers:
        receiver(signal=signal, sender=sender, **named)
