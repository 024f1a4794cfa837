"""Request signals dispatched without a thread hand-off when none is needed.

Django's `Signal.asend` runs every sync receiver through `sync_to_async`, and the ASGI
handler sends `request_started` and `request_finished` on every request: a thread per
request. Django's own receivers have nothing to do for a request that stayed on the loop:

- `reset_queries` and `close_old_connections` tend the database connections of the thread
  that ran sync code during the request. The ORM refuses to run on the event loop, so a
  request that never entered `sync_to_async` opened none.
- `close_caches` and `reset_urlconf` clear context-local state (asgiref `Local`, copy on
  write per context). The view ran in its own task, whose context is discarded with it; the
  handler's context, where the signal is sent, never saw its urlconf or caches.

So they run (in the request's thread, as in Django) only when the request used that thread.
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

_DJANGOS_OWN = frozenset({reset_queries, close_old_connections, close_caches, reset_urlconf})
# Key of our entry in the signal's `sender_receivers_cache`, which Django clears on every
# connect() and disconnect(): the entry can never outlive the receivers it describes.
_OWN_ONLY = object()


async def send_request_signal(
    signal: Signal, sender: type, *, sync_thread_used: bool, **named: Any
) -> None:
    """Send `signal` like `Signal.asend`, leaving the loop only for receivers that need it.

    Args:
        sync_thread_used: whether this request ran sync code in its thread-sensitive thread.
    """
    if not sync_thread_used and _only_djangos_own(signal, sender):
        return  # the common case: nothing to do, decided once per set of receivers
    sync_receivers, async_receivers = signal._live_receivers(sender)
    if not sync_thread_used:
        sync_receivers = [r for r in sync_receivers if r not in _DJANGOS_OWN]
    if sync_receivers:
        await sync_to_async(_call_each)(sync_receivers, signal, sender, named)
    if async_receivers:
        await asyncio.gather(*(r(signal=signal, sender=sender, **named) for r in async_receivers))


def _only_djangos_own(signal: Signal, sender: type) -> bool:
    """Whether Django's own receivers are the only ones connected (cached per sender)."""
    key = (_OWN_ONLY, sender)
    own_only = signal.sender_receivers_cache.get(key)
    if own_only is None:
        sync_receivers, async_receivers = signal._live_receivers(sender)
        own_only = not async_receivers and all(r in _DJANGOS_OWN for r in sync_receivers)
        signal.sender_receivers_cache[key] = own_only
    return bool(own_only)


def _call_each(
    receivers: list[Callable[..., Any]], signal: Signal, sender: type, named: dict[str, Any]
) -> None:
    for receiver in receivers:
        receiver(signal=signal, sender=sender, **named)
