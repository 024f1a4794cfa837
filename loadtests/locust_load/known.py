"""What this process created and may read back: order and report ids with their tokens."""

from __future__ import annotations

import random
from typing import Generic, TypeVar

T = TypeVar("T")


class Known(Generic[T]):
    """The newest `limit` items, picked at random in O(1).

    Reads go to what this process created (with the consistency token the write returned),
    so a replica that is behind is caught, not a 404 on someone else's order.

    Args:
        limit: how many items are kept; the oldest is overwritten first.
    """

    def __init__(self, *, limit: int = 1000) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        self._items: list[T] = []
        self._limit = limit
        self._next = 0  # the slot overwritten next, once full

    def __len__(self) -> int:
        return len(self._items)

    def add(self, item: T) -> None:
        if len(self._items) < self._limit:
            self._items.append(item)
            return
        self._items[self._next] = item
        self._next = (self._next + 1) % self._limit

    def pick(self, rng: random.Random) -> T | None:
        """One item at random, or None while there is none."""
        if not self._items:
            return None
        return self._items[rng.randrange(len(self._items))]
