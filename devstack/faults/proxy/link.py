"""One direction of one proxied connection: a reader, a chain of toxic stages, a sink.

    source ──read──▶ [stage: toxic 1] ──▶ [stage: toxic 2] ──▶ sink ──write──▶ destination

As in Toxiproxy's link.go every toxic runs as its own task between bounded channels, so a
latency toxic holds chunks while the reader keeps reading (delays overlap instead of adding
up), and the chain changes while data flows: a toxic added joins at the end, a toxic removed
hands what it held to the next one, and no byte is lost or reordered. It all runs on one
event loop, so a change is a few synchronous pointer moves where Toxiproxy interrupts
goroutines. Without toxics the reader writes straight to the sink: one task, no channel.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Protocol

from devstack.faults.proxy._types import Chunk, End, Item, ToxicSettings
from devstack.faults.proxy.pipes import noop

logger = logging.getLogger("devstack.faults.proxy")

READ_SIZE = 64 * 1024  # as Go's io.Copy reads 32 KiB: chunks stay small


class Target(Protocol):
    """Where an outlet sends: the next stage's channel, or the sink."""

    drains: bool

    def has_room(self) -> bool: ...

    def push(self, item: Item) -> None: ...

    async def room(self) -> None: ...

    async def drain(self) -> None: ...


class Channel:
    """A bounded FIFO between two stages (a Go channel); `push` may overfill it."""

    drains = False

    def __init__(self, capacity: int) -> None:
        self._items: deque[Item] = deque()
        self._capacity = max(1, capacity)
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()

    def has_room(self) -> bool:
        return len(self._items) < self._capacity

    def push(self, item: Item) -> None:
        self._items.append(item)
        self._readable.set()

    async def room(self) -> None:
        while not self.has_room():
            self._writable.clear()
            await self._writable.wait()

    async def drain(self) -> None:
        return None

    async def pop(self) -> Item:
        while not self._items:
            self._readable.clear()
            await self._readable.wait()
        item = self._items.popleft()
        self._writable.set()
        return item

    def take_all(self) -> list[Item]:
        """Empty the channel, waking a writer blocked on it (so it finds its new target)."""
        items = list(self._items)
        self._items.clear()
        self._writable.set()
        return items


class Sink:
    """The end of a chain: writes to the destination socket and follows its flow control."""

    drains = True

    def __init__(self, link: Link, dest: asyncio.StreamWriter) -> None:
        self._link = link
        self._dest = dest

    def has_room(self) -> bool:
        return True

    def push(self, item: Item) -> None:
        transport = self._dest.transport
        if isinstance(item, End):
            self._link.conn.finish(self._link, item)
        elif transport.is_closing():  # the peer went away: Toxiproxy's writer gives up too
            self._link.conn.finish(self._link, End.CLOSE)
        else:
            transport.write(item.data)

    async def room(self) -> None:
        return None

    async def drain(self) -> None:
        try:
            await self._dest.drain()
        except OSError:  # the destination is gone: end the link as Toxiproxy's writer does
            self._link.conn.finish(self._link, End.CLOSE)


class Outlet:
    """Something that sends items on: the reader, or a stage.

    `held` is what it has taken in and not yet passed on; a stage removed or restarted
    mid-way hands it to its successor, so a toxic must keep `held` true at every await.
    """

    def __init__(self, out: Target) -> None:
        self.out = out
        self.held: tuple[Item, ...] = ()

    async def send(self, item: Item, *, then: tuple[Item, ...] = ()) -> None:
        """Pass `item` on (waiting for room); `then` is what is still held afterwards."""
        self.held = (item, *then)
        target = self.out
        while not target.has_room():
            await target.room()
            target = self.out  # the chain may have changed while we waited
        target.push(item)
        self.held = then
        if target.drains:
            await target.drain()


class Stage(Outlet):
    """One toxic on one link: its own task, its inbox, its per-connection state."""

    def __init__(self, link: Link, toxic: ToxicSettings, out: Target) -> None:
        super().__init__(out)
        self.link = link
        self.toxic = toxic
        self.inbox = Channel(toxic.kind.buffer)
        self.state: dict[str, int] = {}
        self.active = toxic.roll()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"toxic {self.toxic.name}")

    async def recv(self) -> Item:
        return await self.inbox.pop()

    def stop(self) -> list[Item]:
        """Cancel the task (if it is the caller's, at its next await); what it held and
        what waits in its inbox, in order."""
        if self._task is not None:
            self._task.cancel()
        items = [*self.held, *self.inbox.take_all()]
        self.held = ()
        return items

    def restart(self) -> None:
        """Run again with the toxic's new settings (and a new toxicity roll), as Toxiproxy
        does on an update; what it held goes on at once."""
        if self._task is not None:
            self._task.cancel()
        held, self.held = self.held, ()
        for item in held:
            self.out.push(item)
        if not self.link.closed:  # the held item may have been the end
            self.active = self.toxic.roll()
            self.start()

    async def _run(self) -> None:
        pipe = self.toxic.kind.pipe if self.active else noop
        try:
            await pipe(self, self.toxic)
        except Exception:
            logger.exception("toxic %s failed; closing the connection", self.toxic.name)
            self.link.conn.finish(self.link, End.CLOSE)


class Owner(Protocol):
    """The connection a link belongs to: told when the link ends (`connection.Connection`)."""

    def finish(self, link: Link, end: End) -> None: ...


class Link:
    """The data path of one direction (`upstream`: client to server) of a connection."""

    def __init__(
        self,
        conn: Owner,
        direction: str,
        source: asyncio.StreamReader,
        dest: asyncio.StreamWriter,
    ) -> None:
        self.conn = conn
        self.direction = direction
        self.dest = dest
        self.closed = False
        self._source = source
        self._head = Outlet(Sink(self, dest))
        self._stages: list[Stage] = []
        self._reader: asyncio.Task[None] | None = None

    def start(self, toxics: list[ToxicSettings]) -> None:
        for toxic in toxics:
            self.add(toxic)
        self._reader = asyncio.create_task(self._read(), name=f"link {self.direction}")

    def add(self, toxic: ToxicSettings) -> None:
        """Append a toxic: data already past the chain's end is not affected."""
        if self.closed:
            return
        last = self._stages[-1] if self._stages else self._head
        stage = Stage(self, toxic, last.out)
        last.out = stage.inbox
        self._stages.append(stage)
        stage.start()

    def remove(self, toxic: ToxicSettings) -> None:
        """Take a toxic out; what it held goes on to the next one (a removed `timeout`
        closes the connection instead, as in Toxiproxy: the data it dropped is gone)."""
        index = next((i for i, s in enumerate(self._stages) if s.toxic is toxic), None)
        if self.closed or index is None:
            return
        stage = self._stages.pop(index)
        before = self._stages[index - 1] if index else self._head
        items = stage.stop()
        if toxic.kind.closes_on_removal:  # spared connections too (Toxiproxy's Cleanup)
            items = [End.CLOSE]
        before.out = stage.out
        for item in items:
            if self.closed:
                break
            stage.out.push(item)

    def update(self, toxic: ToxicSettings) -> None:
        for stage in self._stages:
            if stage.toxic is toxic and not self.closed:
                stage.restart()

    def halt(self) -> None:
        """Stop every task of the link, the caller's own at its next await (the connection
        closes the sockets)."""
        self.closed = True
        if self._reader is not None:
            self._reader.cancel()
        for stage in self._stages:
            stage.stop()

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        head = self._head
        try:
            while data := await self._source.read(READ_SIZE):
                await head.send(Chunk(data, loop.time()))
        except OSError:  # a reset source ends the link like an EOF, as in Toxiproxy
            pass
        except Exception:
            logger.exception("proxying %s failed; closing the connection", self.direction)
        if not self.closed:
            await head.send(End.CLOSE)
