"""One lifecycle for every resource: `async with resource:` opens it, `aclose()` closes it.

As psycopg_pool's pools and httpx's clients do. Constructors open nothing, so a resource
can be built at import time or in a composition root before any loop runs; entering it
opens it on the running loop (pools connect, background tasks start), and `aclose()`, or
leaving the block, stops and releases what it opened.
"""

from __future__ import annotations

from types import TracebackType
from typing import Self


class AsyncResource:
    """The `async with` half of the lifecycle; a resource supplies `_open()` and `aclose()`."""

    async def _open(self) -> None:
        """Start what runs on the loop (pools, background tasks); nothing by default."""

    async def aclose(self) -> None:
        """Stop and release what `_open()` (or later use) started."""
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        try:
            await self._open()
        except BaseException:
            await self.aclose()  # whatever did open before the failure
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        await self.aclose()
