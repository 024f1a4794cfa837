"""What each toxic does to the data of one link: Toxiproxy's toxics/*.go in asyncio.

A pipe takes items from its stage until its chain ends, keeps `stage.held` true across every
await (see `link.Outlet`), and ends by passing an `End` on. Attributes are read as data
flows, so an updated toxic takes effect on the next chunk. Times are Toxiproxy's units:
milliseconds, the slicer's delay in microseconds, rates in KB/s (1 KB = 1000 bytes).
"""

from __future__ import annotations

import asyncio
import random

from devstack.faults.proxy._types import Chunk, End, PipeStage, ToxicSettings

__all__ = [
    "bandwidth",
    "latency",
    "limit_data",
    "noop",
    "reset_peer",
    "slicer",
    "slow_close",
    "timeout",
]

_TICK = 0.1  # bandwidth: a chunk bigger than 100 ms of the rate goes in 100 ms pieces


async def noop(stage: PipeStage, toxic: ToxicSettings) -> None:
    """Pass everything on: the `noop` toxic, and any toxic on a connection its toxicity
    roll spared."""
    while True:
        item = await stage.recv()
        await stage.send(item)
        if isinstance(item, End):
            return


async def latency(stage: PipeStage, toxic: ToxicSettings) -> None:
    """Each chunk leaves `latency` ± `jitter` ms after it was read; chunks overlap."""
    loop = asyncio.get_running_loop()
    while not isinstance(item := await stage.recv(), End):
        delay = _jittered(toxic.attributes["latency"], toxic.attributes["jitter"]) / 1000
        wait = item.stamp + delay - loop.time()
        if wait > 0:
            stage.held = (item,)
            await asyncio.sleep(wait)
        item.stamp += delay  # a second latency toxic delays from here
        await stage.send(item)
    await stage.send(item)


async def bandwidth(stage: PipeStage, toxic: ToxicSettings) -> None:
    """At most `rate` KB/s: each chunk waits for its bytes at the rate. At a rate of 0 no
    data gets through, as with Toxiproxy (its 100 ms slices are then empty)."""
    loop = asyncio.get_running_loop()
    debt = 0.0  # seconds the rate still owes (Toxiproxy's `sleep`)
    while not isinstance(item := await stage.recv(), End):
        rate = toxic.attributes["rate"]
        stage.held = (item,)
        if rate <= 0:
            await asyncio.Future()  # until the toxic is updated or removed
        debt += len(item.data) / (rate * 1000)
        per_tick, data = rate * 100, item.data
        while len(data) > per_tick:
            await asyncio.sleep(_TICK)
            rest = Chunk(data[per_tick:], item.stamp)
            await stage.send(Chunk(data[:per_tick], item.stamp), then=(rest,))
            data, debt = rest.data, debt - _TICK
        last = Chunk(data, item.stamp)
        stage.held = (last,)
        started = loop.time()
        await asyncio.sleep(max(debt, 0.0))
        debt -= loop.time() - started
        await stage.send(last)
    await stage.send(item)


async def slow_close(stage: PipeStage, toxic: ToxicSettings) -> None:
    """Data passes; the end (a close, or a reset) waits `delay` ms."""
    while not isinstance(item := await stage.recv(), End):
        await stage.send(item)
    stage.held = (item,)
    await asyncio.sleep(toxic.attributes["delay"] / 1000)
    await stage.send(item)


async def timeout(stage: PipeStage, toxic: ToxicSettings) -> None:
    """Drop all data; close `timeout` ms after the toxic started or last saw data (never
    when 0: a blackhole). Removing it closes the connection (see `link.Link.remove`)."""
    seconds = toxic.attributes["timeout"] / 1000
    while True:
        try:
            async with asyncio.timeout(seconds if seconds > 0 else None):
                item = await stage.recv()
        except TimeoutError:
            item = End.CLOSE
        if isinstance(item, End):
            await stage.send(item)
            return


async def reset_peer(stage: PipeStage, toxic: ToxicSettings) -> None:
    """On the first data (or end), drop it and, `timeout` ms later, reset both sockets."""
    await stage.recv()
    await asyncio.sleep(toxic.attributes["timeout"] / 1000)
    await stage.send(End.RESET)


async def slicer(stage: PipeStage, toxic: ToxicSettings) -> None:
    """Cut each chunk into pieces of about `average_size` ± `size_variation` bytes, each
    followed by a pause of `delay` µs."""
    while not isinstance(item := await stage.recv(), End):
        attrs = toxic.attributes
        view = memoryview(item.data)
        bounds = _slices(len(view), attrs["average_size"], attrs["size_variation"])
        for start, end in bounds:
            rest = (Chunk(view[end:], item.stamp),) if end < len(view) else ()
            await stage.send(Chunk(view[start:end], item.stamp), then=rest)
            await asyncio.sleep(attrs["delay"] / 1_000_000)
    await stage.send(item)


async def limit_data(stage: PipeStage, toxic: ToxicSettings) -> None:
    """Pass `bytes` bytes (counted per connection, across updates), then close."""
    sent = stage.state.setdefault("sent", 0)
    while not isinstance(item := await stage.recv(), End):
        limit = toxic.attributes["bytes"]
        data = item.data[: max(limit - sent, 0)]
        if data:
            await stage.send(Chunk(data, item.stamp))
            sent = stage.state["sent"] = sent + len(data)
        if limit - sent <= 0:
            await stage.send(End.CLOSE)
            return
    await stage.send(item)


def _jittered(base: int, jitter: int) -> int:
    """`base` ± `jitter`, uniform in [base - jitter, base + jitter) as Go's rand.Int63n."""
    if jitter <= 0:
        return base
    return base + random.randrange(-jitter, jitter)  # noqa: S311 - a fault, not a secret


def _slices(size: int, average: int, variation: int) -> list[tuple[int, int]]:
    """Toxiproxy's halving split of [0, size) until pieces are within average + variation."""
    out: list[tuple[int, int]] = []
    todo = [(0, size)]
    while todo:
        start, end = todo.pop()
        if end - start - average <= variation or end - start <= 1:
            out.append((start, end))
            continue
        mid = start + (end - start) // 2
        if variation > 0:
            mid += random.randrange(-variation, variation)  # noqa: S311
        mid = min(max(mid, start + 1), end - 1)  # Go would slice out of range here
        todo += [(mid, end), (start, mid)]
    return out
