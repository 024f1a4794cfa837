"""A closed loop inside one client process, and that process's CPU over the measured window.

`concurrency` tasks each send a request, wait for its answer and send the next, for a warmup
then a measured window: what the window saw (answers by status, failures by exception,
latencies) and the CPU the whole process used meanwhile (user + system, every thread). A
request counts where its answer (or failure) lands: in the window or not at all.
"""

from __future__ import annotations

import asyncio
import resource
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from time import perf_counter

Send = Callable[[], Awaitable[int]]  # one request; its answer's status
FAILURE_BACKOFF = 0.01  # seconds: a failing send must not turn the loop into a busy one


@dataclass
class Window:
    """What one measured window saw.

    Args:
        duration: seconds between the window's opening and closing.
        cpu_user, cpu_system: this process's CPU seconds over the window.
    """

    statuses: dict[int, int] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)  # exception class -> count
    latencies_s: list[float] = field(default_factory=list)  # of every answer, not failures
    duration: float = 0.0
    cpu_user: float = 0.0
    cpu_system: float = 0.0

    @property
    def requests(self) -> int:
        """Answers, whatever their status (failures apart)."""
        return sum(self.statuses.values())

    @property
    def cpu(self) -> float:
        return self.cpu_user + self.cpu_system


class _Loop:
    """The window's state: closed, open (counting), then closed again for good."""

    def __init__(self) -> None:
        self.window = Window()
        self.counting = False
        self.stopped = False
        self._opened = 0.0
        self._usage: resource.struct_rusage | None = None

    def open(self) -> None:
        self._usage = resource.getrusage(resource.RUSAGE_SELF)
        self._opened = perf_counter()
        self.counting = True

    def close(self) -> None:
        self.counting = False
        self.stopped = True
        closed = perf_counter()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        assert self._usage is not None
        self.window.duration = closed - self._opened
        self.window.cpu_user = usage.ru_utime - self._usage.ru_utime
        self.window.cpu_system = usage.ru_stime - self._usage.ru_stime

    async def work(self, send: Send) -> None:
        window = self.window
        while not self.stopped:
            begun = perf_counter()
            try:
                status = await send()
            except Exception as exc:
                if self.counting:
                    kind = type(exc).__name__
                    window.failures[kind] = window.failures.get(kind, 0) + 1
                await asyncio.sleep(FAILURE_BACKOFF)
                continue
            if self.counting:
                window.statuses[status] = window.statuses.get(status, 0) + 1
                window.latencies_s.append(perf_counter() - begun)


async def measure(send: Send, *, concurrency: int, warmup: float, duration: float,
                  opened: Callable[[], None] = lambda: None) -> Window:  # fmt: skip
    """Keep `concurrency` requests in flight for `warmup` then `duration` seconds.

    `opened` is called as the window opens (to start measuring something else meanwhile).
    Returns once every task's last request has ended (each is bounded by its own timeout).
    """
    if concurrency < 1 or duration <= 0 or warmup < 0:
        raise ValueError("concurrency must be >= 1, duration > 0 and warmup >= 0")
    state = _Loop()
    workers = [asyncio.create_task(state.work(send)) for _ in range(concurrency)]
    try:
        await asyncio.sleep(warmup)
        state.open()
        opened()
        await asyncio.sleep(duration)
        state.close()
        await asyncio.gather(*workers)
    finally:
        state.stopped = True
        for worker in workers:
            worker.cancel()
    return state.window
