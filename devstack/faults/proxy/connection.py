"""A proxied connection: the client's socket, the upstream's, and a link each way.

A link that ends closes its destination socket entirely, as Toxiproxy's writer does, so the
other link then reads EOF from it and ends in turn after flushing what its toxics hold: the
client's EOF (even a half-close) ends the whole connection, as through a real Toxiproxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Callable, Mapping

from devstack.faults.proxy._types import End
from devstack.faults.proxy.link import Link
from devstack.faults.proxy.toxics import DOWNSTREAM, UPSTREAM, Toxic

Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]
_LINGER_ZERO = struct.pack("ii", 1, 0)  # close() then sends RST and drops unsent data


class Connection:
    """Client <-> proxy <-> upstream, with the proxy's toxics on each direction.

    Args:
        client: the accepted client's streams.
        upstream: the streams of the connection opened to the proxy's upstream.
        on_close: called once when both links have ended.
    """

    def __init__(self, client: Stream, upstream: Stream, on_close: Callable[[Connection], None]):
        self._writers = (client[1], upstream[1])
        self._on_close = on_close
        self._closed = False
        self.up = Link(self, UPSTREAM, client[0], upstream[1])
        self.down = Link(self, DOWNSTREAM, upstream[0], client[1])

    @property
    def links(self) -> tuple[Link, Link]:
        return self.up, self.down

    def start(self, toxics: Mapping[str, list[Toxic]]) -> None:
        for link in self.links:
            link.start(list(toxics[link.direction]))

    def finish(self, link: Link, end: End) -> None:
        """A link's chain ended: close its destination (or reset everything)."""
        if end is End.RESET:
            self.reset()
            return
        if link.closed:
            return
        link.halt()
        link.dest.close()
        if all(other.closed for other in self.links):
            self._done()

    def reset(self) -> None:
        """Both sockets closed with SO_LINGER 0: each peer gets an RST (reset_peer)."""
        for writer in self._writers:
            sock = writer.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
        self.abort()

    def abort(self) -> None:
        """Drop both sockets now, whatever the toxics hold (a proxy disabled or deleted)."""
        for link in self.links:
            link.halt()
        for writer in self._writers:
            writer.transport.abort()
        self._done()

    def _done(self) -> None:
        if not self._closed:
            self._closed = True
            self._on_close(self)
