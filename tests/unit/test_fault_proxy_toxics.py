"""The fault proxy's toxics, measured on real sockets: a client, the proxy, a TCP server.

Everything runs on the test's loop: the proxy (driven through its HTTP API), small TCP
servers standing for the upstream, and the client. Timing asserts are the toxics' effects
(lower bounds firm, upper bounds generous for a loaded machine); added latency is measured
against a baseline taken in the same test.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
import uvloop

from devstack.faults.proxy import ToxiproxyServer

Handler = Callable[["Recording", asyncio.StreamWriter], Awaitable[None]]
SLACK = 0.005  # timers may fire this much early against our clock


class Upstream:
    """A TCP server the proxy forwards to; records what it receives, closes all at the end."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self.received = bytearray()
        self.eof = asyncio.Event()  # a client connection ended (EOF or reset)

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        with contextlib.suppress(ConnectionError):
            await self._handler(Recording(reader, self), writer)
        writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in self._writers:
            writer.transport.abort()


class Recording:
    """The server side's reader: what it reads is copied into its upstream's `received`."""

    def __init__(self, reader: asyncio.StreamReader, upstream: Upstream) -> None:
        self._inner = reader
        self._upstream = upstream

    async def read(self, n: int = -1) -> bytes:
        try:
            data = await self._inner.read(n)
        except ConnectionError:
            data = b""
        self._upstream.received += data
        if not data:
            self._upstream.eof.set()
        return data


async def echo(reader: Recording, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()


async def greet_then_echo(reader: Recording, writer: asyncio.StreamWriter) -> None:
    writer.write(b"hello")
    await echo(reader, writer)


def send_and_close(data: bytes) -> Handler:
    """Answer the first bytes received with `data`, then close."""

    async def handler(reader: Recording, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)
        writer.write(data)
        await writer.drain()

    return handler


class Peer:
    """A client connected through the proxy."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def roundtrip(self, data: bytes = b"ping") -> float:
        """Seconds until `data` comes back (through an echo upstream)."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        self.writer.write(data)
        assert await asyncio.wait_for(self.reader.readexactly(len(data)), 10) == data
        return loop.time() - started

    async def read_to_end(self, limit: float = 10.0) -> bytes:
        return await asyncio.wait_for(self.reader.read(), limit)

    async def nothing_within(self, seconds: float) -> bool:
        """True when no byte (and no EOF) arrives within `seconds`."""
        try:
            await asyncio.wait_for(self.reader.read(1), seconds)
        except TimeoutError:
            return True
        return False


class Toxiproxy:
    """The fault proxy on a free port, driven through its HTTP API like any client."""

    def __init__(self, server: ToxiproxyServer) -> None:
        self.http = httpx.AsyncClient(base_url=server.url, timeout=10)
        self._peers: list[Peer] = []
        self._upstreams: list[Upstream] = []

    async def proxy(self, handler: Handler, name: str = "p") -> tuple[str, int]:
        upstream = Upstream(handler)
        self._upstreams.append(upstream)
        self.upstream = upstream
        body = {"name": name, "listen": "127.0.0.1:0", "upstream": await upstream.start()}
        answer = await self.http.post("/proxies", json=body)
        assert answer.status_code == 201, answer.text
        host, port = answer.json()["listen"].rsplit(":", 1)
        self.address = (host, int(port))
        return self.address

    async def connect(self) -> Peer:
        peer = Peer(*await asyncio.open_connection(*self.address))
        self._peers.append(peer)
        return peer

    async def toxic(self, type_: str, proxy: str = "p", **fields: Any) -> str:
        answer = await self.http.post(f"/proxies/{proxy}/toxics", json={"type": type_, **fields})
        assert answer.status_code == 200, answer.text
        return str(answer.json()["name"])

    async def remove(self, toxic: str, proxy: str = "p") -> None:
        answer = await self.http.delete(f"/proxies/{proxy}/toxics/{toxic}")
        assert answer.status_code == 204, answer.text

    async def update(self, toxic: str, proxy: str = "p", **fields: Any) -> None:
        answer = await self.http.post(f"/proxies/{proxy}/toxics/{toxic}", json=fields)
        assert answer.status_code == 200, answer.text

    async def set_enabled(self, enabled: bool, proxy: str = "p") -> None:
        answer = await self.http.post(f"/proxies/{proxy}", json={"enabled": enabled})
        assert answer.status_code == 200, answer.text

    async def close(self) -> None:
        await self.http.aclose()
        for peer in self._peers:
            peer.writer.transport.abort()
        for upstream in self._upstreams:
            await upstream.close()


@contextlib.asynccontextmanager
async def running_toxiproxy() -> AsyncIterator[Toxiproxy]:
    server = ToxiproxyServer(host="127.0.0.1", port=0)
    await server.start()
    client = Toxiproxy(server)
    try:
        yield client
    finally:
        await client.close()
        await server.stop()
        await asyncio.sleep(0.01)  # aborted sockets close on the next loop turns


@pytest.fixture
async def toxiproxy() -> AsyncIterator[Toxiproxy]:
    async with running_toxiproxy() as client:
        yield client


async def baseline(peer: Peer, rounds: int = 3) -> float:
    """The fastest of a few round trips: the one least disturbed by the machine's load."""
    return min([await peer.roundtrip() for _ in range(rounds)])


async def test_forwards_data_both_ways_unchanged(toxiproxy: Toxiproxy) -> None:
    """Without toxics, a megabyte goes through and back byte for byte."""
    await toxiproxy.proxy(echo)
    peer = await toxiproxy.connect()
    data = bytes(range(256)) * 4096
    peer.writer.write(data)
    assert await asyncio.wait_for(peer.reader.readexactly(len(data)), 10) == data


async def test_latency_adds_latency_within_jitter(toxiproxy: Toxiproxy) -> None:
    """Each answer comes latency ± jitter later than without the toxic."""
    await toxiproxy.proxy(echo)
    peer = await toxiproxy.connect()
    base = await baseline(peer)
    await toxiproxy.toxic("latency", attributes={"latency": 100, "jitter": 20})
    added = [await peer.roundtrip() - base for _ in range(3)]
    assert min(added) >= 0.080 - SLACK
    assert max(added) < 0.120 + 0.5


async def test_latency_delays_chunks_side_by_side(toxiproxy: Toxiproxy) -> None:
    """Two chunks sent 50 ms apart arrive about 50 ms apart: delays overlap, not add up."""

    async def two_chunks(reader: Recording, writer: asyncio.StreamWriter) -> None:
        writer.write(b"a")
        await asyncio.sleep(0.05)
        writer.write(b"b")
        await reader.read()

    await toxiproxy.proxy(two_chunks)
    await toxiproxy.toxic("latency", attributes={"latency": 300})
    loop = asyncio.get_running_loop()
    started = loop.time()
    peer = await toxiproxy.connect()
    assert await peer.reader.readexactly(1) == b"a"
    first = loop.time()
    assert await peer.reader.readexactly(1) == b"b"
    assert first - started >= 0.300 - SLACK
    assert loop.time() - first < 0.250  # one latency later would be 0.3 s


async def test_bandwidth_limits_the_transfer_rate(toxiproxy: Toxiproxy) -> None:
    """25 kB at 100 KB/s take about 0.25 s."""
    size = 25_000
    await toxiproxy.proxy(send_and_close(b"x" * size))
    await toxiproxy.toxic("bandwidth", attributes={"rate": 100})
    peer = await toxiproxy.connect()
    loop = asyncio.get_running_loop()
    started = loop.time()
    peer.writer.write(b"go")
    data = await peer.read_to_end()
    elapsed = loop.time() - started
    assert len(data) == size
    assert 0.25 * 0.9 <= elapsed < 0.25 + 2.0


async def test_reset_peer_resets_the_client(toxiproxy: Toxiproxy) -> None:
    """After `timeout` ms the client's connection is reset (ECONNRESET), not closed."""
    await toxiproxy.proxy(echo)
    await toxiproxy.toxic("reset_peer", attributes={"timeout": 100})
    peer = await toxiproxy.connect()
    loop = asyncio.get_running_loop()
    started = loop.time()
    peer.writer.write(b"ping")
    with pytest.raises(ConnectionResetError):
        await peer.read_to_end()
    assert loop.time() - started >= 0.100 - SLACK
    await asyncio.wait_for(toxiproxy.upstream.eof.wait(), 5)  # the server side went too


async def test_timeout_drops_data_and_closes_after_timeout(toxiproxy: Toxiproxy) -> None:
    """No data arrives, and the connection is closed `timeout` ms after the last data."""
    await toxiproxy.proxy(echo)
    await toxiproxy.toxic("timeout", attributes={"timeout": 150})
    peer = await toxiproxy.connect()
    loop = asyncio.get_running_loop()
    started = loop.time()
    peer.writer.write(b"ping")
    assert await peer.read_to_end() == b""
    assert loop.time() - started >= 0.150 - SLACK


async def test_timeout_zero_is_a_blackhole(toxiproxy: Toxiproxy) -> None:
    """With timeout 0 nothing arrives and the connection stays open."""
    await toxiproxy.proxy(echo)
    await toxiproxy.toxic("timeout", attributes={"timeout": 0})
    peer = await toxiproxy.connect()
    peer.writer.write(b"ping")
    assert await peer.nothing_within(0.2)
    assert toxiproxy.upstream.received == b"ping"  # the request went through, not the answer


async def test_limit_data_passes_exactly_n_bytes_then_closes(toxiproxy: Toxiproxy) -> None:
    """A 10-byte limit lets the first 10 bytes through, then closes."""
    await toxiproxy.proxy(echo)
    await toxiproxy.toxic("limit_data", attributes={"bytes": 10})
    peer = await toxiproxy.connect()
    data = bytes(range(100))
    peer.writer.write(data)
    assert await peer.read_to_end() == data[:10]


async def test_slicer_delivers_data_in_pieces(toxiproxy: Toxiproxy) -> None:
    """200 bytes sliced to about 10 arrive in many reads, whole and in order."""
    await toxiproxy.proxy(send_and_close(bytes(range(200))))
    attributes = {"average_size": 10, "size_variation": 2, "delay": 5000}
    await toxiproxy.toxic("slicer", attributes=attributes)
    peer = await toxiproxy.connect()
    peer.writer.write(b"go")
    pieces = []
    while piece := await asyncio.wait_for(peer.reader.read(1000), 10):
        pieces.append(piece)
    assert b"".join(pieces) == bytes(range(200))
    assert len(pieces) >= 5


async def test_slow_close_delays_the_close(toxiproxy: Toxiproxy) -> None:
    """The server's close reaches the client `delay` ms late; the data does not."""

    async def time_to_close() -> float:
        peer = await toxiproxy.connect()
        peer.writer.write(b"go")
        assert await peer.reader.readexactly(4) == b"data"
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await peer.read_to_end() == b""
        return loop.time() - started

    await toxiproxy.proxy(send_and_close(b"data"))
    without = await time_to_close()
    await toxiproxy.toxic("slow_close", attributes={"delay": 200})
    assert await time_to_close() - without >= 0.200 - 0.05


async def test_toxicity_decides_per_connection(toxiproxy: Toxiproxy) -> None:
    """Toxicity 0 spares every connection; toxicity 1 hits every one."""
    await toxiproxy.proxy(echo)
    name = await toxiproxy.toxic("timeout", toxicity=0.0, attributes={"timeout": 0})
    spared = await toxiproxy.connect()
    await spared.roundtrip()
    await toxiproxy.update(name, toxicity=1.0)
    hit = await toxiproxy.connect()
    hit.writer.write(b"ping")
    assert await hit.nothing_within(0.2)


@pytest.mark.parametrize(("stream", "greeting", "echoed"), [
    ("upstream", True, False),
    ("downstream", False, False),
])  # fmt: skip
async def test_stream_picks_the_direction(
    toxiproxy: Toxiproxy, stream: str, greeting: bool, echoed: bool
) -> None:
    """A blackhole upstream stops requests (the greeting still arrives); downstream stops
    everything the server sends."""
    await toxiproxy.proxy(greet_then_echo)
    await toxiproxy.toxic("timeout", stream=stream, attributes={"timeout": 0})
    peer = await toxiproxy.connect()
    got_greeting = not await peer.nothing_within(0.2)
    if got_greeting:
        assert await peer.reader.readexactly(4) == b"ello"
    peer.writer.write(b"ping")
    assert got_greeting is greeting
    assert (not await peer.nothing_within(0.2)) is echoed
    assert (toxiproxy.upstream.received == b"ping") is (stream == "downstream")


async def test_toxics_added_and_removed_apply_to_open_connections(toxiproxy: Toxiproxy) -> None:
    """A latency toxic added to an open connection delays its next answer; removed, it
    stops delaying."""
    await toxiproxy.proxy(echo)
    peer = await toxiproxy.connect()
    base = await baseline(peer)
    name = await toxiproxy.toxic("latency", attributes={"latency": 150})
    assert await peer.roundtrip() - base >= 0.150 - SLACK
    await toxiproxy.remove(name)
    assert await peer.roundtrip() < 0.150


async def test_updated_toxic_applies_to_open_connections(toxiproxy: Toxiproxy) -> None:
    """Updating a toxic's attributes changes its effect on connections already open."""
    await toxiproxy.proxy(echo)
    peer = await toxiproxy.connect()
    name = await toxiproxy.toxic("latency", attributes={"latency": 50})
    assert await peer.roundtrip() >= 0.050 - SLACK
    await toxiproxy.update(name, attributes={"latency": 150})
    assert await peer.roundtrip() >= 0.150 - SLACK


async def test_removing_a_timeout_closes_the_connections_it_held(toxiproxy: Toxiproxy) -> None:
    """As in Toxiproxy, a removed timeout toxic closes its connections (data was lost)."""
    await toxiproxy.proxy(echo)
    peer = await toxiproxy.connect()
    await peer.roundtrip()
    name = await toxiproxy.toxic("timeout", attributes={"timeout": 0})
    peer.writer.write(b"ping")
    assert await peer.nothing_within(0.2)
    await toxiproxy.remove(name)
    assert await peer.read_to_end() == b""


async def test_disabling_refuses_connections_and_drops_open_ones(toxiproxy: Toxiproxy) -> None:
    """Disabled, the proxy drops its connections and refuses new ones; enabled again, it
    listens on the same address."""
    await toxiproxy.proxy(echo)
    peer = await toxiproxy.connect()
    await peer.roundtrip()
    await toxiproxy.set_enabled(False)
    with contextlib.suppress(ConnectionResetError):
        assert await peer.read_to_end() == b""
    with pytest.raises(ConnectionRefusedError):
        await toxiproxy.connect()
    await toxiproxy.set_enabled(True)
    again = await toxiproxy.connect()
    await again.roundtrip()


async def test_client_close_closes_the_upstream_connection(toxiproxy: Toxiproxy) -> None:
    """When the client closes, the server sees its connection end."""
    await toxiproxy.proxy(echo)
    peer = await toxiproxy.connect()
    await peer.roundtrip()
    peer.writer.close()
    await asyncio.wait_for(toxiproxy.upstream.eof.wait(), 5)


async def test_unreachable_upstream_closes_the_client(toxiproxy: Toxiproxy) -> None:
    """A client is accepted, then closed when the upstream refuses the connection."""
    await toxiproxy.proxy(echo)
    await toxiproxy.upstream.close()
    peer = await toxiproxy.connect()
    assert await peer.read_to_end() == b""


Scenario = Callable[[Toxiproxy], Awaitable[None]]


async def _run(scenario: Scenario) -> None:
    async with running_toxiproxy() as client:
        await scenario(client)


@pytest.mark.parametrize("scenario", [
    test_forwards_data_both_ways_unchanged,
    test_latency_adds_latency_within_jitter,
    test_latency_delays_chunks_side_by_side,
    test_bandwidth_limits_the_transfer_rate,
    test_reset_peer_resets_the_client,
    test_timeout_drops_data_and_closes_after_timeout,
    test_timeout_zero_is_a_blackhole,
    test_limit_data_passes_exactly_n_bytes_then_closes,
    test_slicer_delivers_data_in_pieces,
    test_slow_close_delays_the_close,
    test_toxicity_decides_per_connection,
    test_toxics_added_and_removed_apply_to_open_connections,
    test_updated_toxic_applies_to_open_connections,
    test_removing_a_timeout_closes_the_connections_it_held,
    test_disabling_refuses_connections_and_drops_open_ones,
    test_client_close_closes_the_upstream_connection,
    test_unreachable_upstream_closes_the_client,
], ids=lambda scenario: scenario.__name__.removeprefix("test_"))  # fmt: skip
def test_on_uvloop(scenario: Scenario) -> None:
    """The same behaviours on uvloop, the loop the CLI runs the proxy on."""
    uvloop.run(_run(scenario))
