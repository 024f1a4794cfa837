"""A count-based sliding window over the last N call outcomes: a ring buffer, O(1) per call."""

from __future__ import annotations

# Outcome codes kept in the ring, one byte each; they index the running counts.
OK = 0
SLOW = 1
FAILED = 2
_EMPTY = 3  # a slot no call has filled yet


class OutcomeWindow:
    """The outcomes of the last `size` calls, with running counts so rates cost no scan.

    Args:
        size: how many of the latest outcomes are kept.
        minimum: calls the window must hold before its rates mean anything.
    """

    __slots__ = ("_counts", "_minimum", "_next", "_ring", "_size")

    def __init__(self, size: int, minimum: int) -> None:
        if not 1 <= minimum <= size:
            raise ValueError(f"need 1 <= minimum <= size, got minimum={minimum}, size={size}")
        self._size = size
        self._minimum = minimum
        self._ring = bytearray([_EMPTY]) * size
        self._counts = [0, 0, 0, size]
        self._next = 0

    def add(self, code: int) -> bool:
        """Record one outcome (OK, SLOW or FAILED); True when the rates need checking.

        A success lowers both rates, so it matters only when it fills the window up to
        `minimum`; replacing an equal outcome (the steady state) changes no count at all.
        """
        index = self._next
        self._next = 0 if index + 1 == self._size else index + 1
        old = self._ring[index]
        if old == code:
            return code != OK
        counts = self._counts
        counts[old] -= 1
        counts[code] += 1
        self._ring[index] = code
        return code != OK or (old == _EMPTY and self._size - counts[_EMPTY] == self._minimum)

    def reset(self) -> None:
        """Forget every outcome (a fresh window after the breaker closes)."""
        self._ring[:] = bytearray([_EMPTY]) * self._size
        self._counts[:] = (0, 0, 0, self._size)
        self._next = 0

    @property
    def total(self) -> int:
        """Calls in the window (at most `size`)."""
        return self._size - self._counts[_EMPTY]

    @property
    def failure_rate(self) -> float:
        """Failed calls over calls in the window; 0.0 when it is empty."""
        total = self.total
        return self._counts[FAILED] / total if total else 0.0

    @property
    def slow_rate(self) -> float:
        """Slow successful calls over calls in the window; 0.0 when it is empty."""
        total = self.total
        return self._counts[SLOW] / total if total else 0.0
