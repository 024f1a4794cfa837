"""`bench transport`'s upstream: every request gets the tips upstream's answer, ready-made.

`bench transport` measures HTTP clients, so the upstream must cost next to nothing: a raw
asyncio protocol on uvloop that answers each request with the same bytes, built once (the
demo upstream's `/tips` body, its headers as uvicorn sends them). No parser, no routing: a
request ends at its blank line, and requests carrying a body are not supported (the clients
measured send GETs). Pipelined requests get one answer each, in one write.

    python -m loadtests.bench.transport.canned --port 8100
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Sequence
from email.utils import formatdate
from typing import cast

from devstack.upstream.app import TIPS

END = b"\r\n\r\n"


def tips_body() -> bytes:
    """The demo upstream's `GET /tips` body (every tip), as compact JSON."""
    tips = [{"id": number, "text": text} for number, text in enumerate(TIPS, 1)]
    return json.dumps({"tips": tips}, separators=(",", ":")).encode()


def answer(body: bytes) -> bytes:
    """A keep-alive 200 with `body` as JSON; the date is the start-up's (nobody reads it)."""
    head = (
        "HTTP/1.1 200 OK\r\n"
        f"date: {formatdate(usegmt=True)}\r\n"
        "server: uvicorn\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


class Canned(asyncio.Protocol):
    """Answers every request on one connection with `response`."""

    def __init__(self, response: bytes) -> None:
        self._response = response
        self._pending = b""  # the start of a request whose blank line has not arrived
        self._transport: asyncio.WriteTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio's classes, only alike: cast, not checked.
        self._transport = cast(asyncio.WriteTransport, transport)

    def data_received(self, data: bytes) -> None:
        buffered = self._pending + data if self._pending else data
        ended = buffered.count(END)
        if not ended:
            self._pending = buffered
            return
        self._pending = buffered[buffered.rfind(END) + len(END) :]
        assert self._transport is not None
        self._transport.write(self._response * ended)


async def serve(port: int, host: str = "127.0.0.1") -> None:
    """Answer on `host:port` until cancelled (or the process is stopped)."""
    response = answer(tips_body())
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Canned(response), host, port, backlog=1024)
    async with server:
        await server.serve_forever()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m loadtests.bench.transport.canned")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    import uvloop  # noqa: PLC0415 - the service's loop; only the process that serves needs it

    uvloop.run(serve(args.port))


if __name__ == "__main__":
    main()
