"""Small fakes shared by tests: seams the code under test offers, never a real service."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class FakeClock:
    """A clock (monotonic or wall) that a test advances by hand, through a `clock=` seam."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeRedis:
    """The three commands the sharing uses, in memory; `down` makes them all fail.

    Each command first wakes `commands`, so a test can wait for what a polling round did.
    """

    def __init__(self) -> None:
        self.data: dict[str, str] = {}
        self.down = False
        self.commands = asyncio.Condition()

    async def _command(self) -> None:
        async with self.commands:
            self.commands.notify_all()
        if self.down:
            raise ConnectionError("redis is down")

    async def set(self, key: str, value: str, px: int) -> None:
        await self._command()
        self.data[key] = value

    async def get(self, key: str) -> str | None:
        await self._command()
        return self.data.get(key)

    async def delete(self, key: str) -> None:
        await self._command()
        self.data.pop(key, None)

    async def until(self, condition: Callable[[], bool]) -> None:
        """Wait (5 s at most) until `condition` holds after some command."""
        async with asyncio.timeout(5), self.commands:
            await self.commands.wait_for(condition)
