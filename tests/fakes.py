"""Small fakes shared by tests: seams the code under test offers, never a real service."""

from __future__ import annotations


class FakeClock:
    """A clock (monotonic or wall) that a test advances by hand, through a `clock=` seam."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
