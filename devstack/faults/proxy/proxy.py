"""One proxy: a listener that forwards each client to its upstream through its toxics.

Like Toxiproxy's Proxy: `listen` becomes the real address once listening (`127.0.0.1:0`
reads back as `127.0.0.1:41234`), disabling closes the listener and drops every connection,
enabling listens again on that address, and toxics added or removed apply to the
connections already open as well as to new ones.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from devstack.faults.proxy import _addr
from devstack.faults.proxy.connection import Connection, Stream
from devstack.faults.proxy.errors import ProxyAlreadyStarted, ProxyStartError, ToxicNotFound
from devstack.faults.proxy.link import Link
from devstack.faults.proxy.toxics import DOWNSTREAM, UPSTREAM, Toxic, parse_toxic

logger = logging.getLogger("devstack.faults.proxy")

BACKLOG = 1024
STREAM_LIMIT = 128 * 1024  # bytes a stream buffers before it stops reading its socket


class Proxy:
    """A named `listen` -> `upstream` TCP proxy with its toxics (not listening until
    `start`)."""

    def __init__(self, name: str, listen: str, upstream: str) -> None:
        self.name = name
        self.listen = listen
        self.upstream = upstream
        self.enabled = False
        self.toxics: dict[str, list[Toxic]] = {UPSTREAM: [], DOWNSTREAM: []}
        self._server: asyncio.Server | None = None
        self._connections: set[Connection] = set()
        self._generation = 0  # bumped on every stop: connects in flight then are dropped

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "listen": self.listen,
            "upstream": self.upstream,
            "enabled": self.enabled,
            "toxics": [toxic.as_json() for toxic in self.toxic_list()],
        }

    # --- listening ------------------------------------------------------------------------
    async def start(self) -> None:
        if self.enabled:
            raise ProxyAlreadyStarted
        sock = await _addr.bind(self.listen)
        try:
            self._server = await asyncio.start_server(
                self._accept, sock=sock, backlog=BACKLOG, limit=STREAM_LIMIT
            )
        except OSError as exc:
            sock.close()
            raise ProxyStartError(f"listen tcp {self.listen}: {exc}") from exc
        self.listen = _addr.address_of(sock)
        self.enabled = True

    async def stop(self) -> None:
        if not self.enabled:
            return
        self.enabled = False
        self._generation += 1
        if self._server is not None:
            self._server.close()
            self._server = None
        dropped = list(self._connections)
        for conn in dropped:
            conn.abort()
        await asyncio.sleep(0)  # let the loop release the listening socket
        if dropped:
            logger.info("proxy %s: %d connections dropped", self.name, len(dropped))

    async def differs(self, listen: str, upstream: str) -> bool:
        """Whether `listen` (resolved) or `upstream` differ: Toxiproxy's Differs."""
        return self.listen != await _addr.resolve(listen) or self.upstream != upstream

    async def update(self, *, listen: str, upstream: str, enabled: bool) -> None:
        """Apply POST /proxies/{proxy}: a new address restarts it, `enabled` starts or
        stops it."""
        before = (self.listen, self.upstream, self.enabled)
        if await self.differs(listen, upstream):
            await self.stop()
            self.listen, self.upstream = listen, upstream
        if enabled != self.enabled:
            await (self.start() if enabled else self.stop())
        if (self.listen, self.upstream, self.enabled) != before:
            logger.info("proxy %s updated: %s", self.name, self.describe())

    def describe(self) -> str:
        state = "enabled" if self.enabled else "disabled"
        return f"{self.listen} -> {self.upstream} ({state})"

    # --- toxics ---------------------------------------------------------------------------
    def toxic_list(self) -> list[Toxic]:
        return self.toxics[UPSTREAM] + self.toxics[DOWNSTREAM]

    def get_toxic(self, name: str) -> Toxic:
        for toxic in self.toxic_list():
            if toxic.name == name:
                return toxic
        raise ToxicNotFound

    def add_toxic(self, body: object) -> Toxic:
        toxic = parse_toxic(body, taken=self._has_toxic)
        self.toxics[toxic.direction].append(toxic)
        for link in self._links(toxic.direction):
            link.add(toxic)
        logger.info("proxy %s: toxic %s added %s", self.name, toxic.name, _describe(toxic))
        return toxic

    def update_toxic(self, name: str, body: object) -> Toxic:
        toxic = self.get_toxic(name)
        toxic.update(body)
        for link in self._links(toxic.direction):
            link.update(toxic)
        logger.info("proxy %s: toxic %s updated %s", self.name, toxic.name, _describe(toxic))
        return toxic

    def remove_toxic(self, name: str) -> None:
        toxic = self.get_toxic(name)
        self.toxics[toxic.direction].remove(toxic)
        for link in self._links(toxic.direction):
            link.remove(toxic)
        logger.info("proxy %s: toxic %s removed", self.name, toxic.name)

    def reset_toxics(self) -> None:
        for toxic in self.toxic_list():
            self.remove_toxic(toxic.name)

    def _has_toxic(self, name: str) -> bool:
        return any(toxic.name == name for toxic in self.toxic_list())

    def _links(self, direction: str) -> list[Link]:
        links = [link for conn in list(self._connections) for link in conn.links]
        return [link for link in links if link.direction == direction and not link.closed]

    # --- connections ----------------------------------------------------------------------
    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        generation = self._generation
        client: Stream = (reader, writer)
        try:
            host, port = _addr.split_host_port(self.upstream)
            upstream = await asyncio.open_connection(host, port, limit=STREAM_LIMIT)
        except (OSError, ValueError) as exc:
            logger.warning("proxy %s: upstream %s unreachable: %s", self.name, self.upstream, exc)
            writer.close()
            return
        logger.debug("proxy %s: client %s connected", self.name, writer.get_extra_info("peername"))
        if generation != self._generation:  # stopped while connecting
            for _, side in (client, upstream):
                side.transport.abort()
            return
        conn = Connection(client, upstream, on_close=self._connections.discard)
        self._connections.add(conn)
        conn.start(self.toxics)


def _describe(toxic: Toxic) -> str:
    settings = [toxic.type, toxic.direction, f"toxicity={toxic.toxicity:g}"]
    settings += [f"{key}={value}" for key, value in toxic.attributes.items()]
    return f"({' '.join(settings)})"
