"""The demo tips upstream, run as a real process and failed for real through its control port."""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from devstack.upstream import AsyncUpstreamControl, Mode, UpstreamControl
from devstack.upstream.control import UpstreamControlError

pytestmark = pytest.mark.integration

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = httpx.Timeout(10.0)
STOP_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Upstream:
    process: subprocess.Popen[str]
    port: int
    tips_url: str
    control_url: str


def _free_port(taken: set[int]) -> int:
    """A random bindable port below the ephemeral range, so no client socket takes it."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randint(20000, 32000)
        with socket.socket() as sock, contextlib.suppress(OSError):
            sock.bind((HOST, port))
            if port not in taken:
                return port
    raise RuntimeError("no bindable port in 20000..32000")


def _terminate(process: subprocess.Popen[str]) -> None:
    """SIGTERM the upstream and insist it exits cleanly within STOP_TIMEOUT_S."""
    assert process.stdout is not None
    process.stdout.close()
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise AssertionError(f"upstream ignored SIGTERM for {STOP_TIMEOUT_S}s") from None
    assert process.returncode == 0


@contextlib.contextmanager
def _running_upstream() -> Iterator[Upstream]:
    port = _free_port(set())
    control_port = _free_port({port})
    args = ["--host", HOST, "--port", str(port), "--control-port", str(control_port)]
    command = [sys.executable, "-m", "devstack.upstream", *args, "--log-level", "warning"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    tips_url, control_url = f"http://{HOST}:{port}", f"http://{HOST}:{control_port}"
    try:
        with UpstreamControl(control_url) as control:
            control.wait_ready(timeout=10.0)
        assert process.stdout is not None
        ready = f"upstream ready tips={tips_url} control={control_url}\n"
        assert process.stdout.readline() == ready
        yield Upstream(process, port, tips_url, control_url)
    finally:
        _terminate(process)


async def _until_in_flight(control: AsyncUpstreamControl, count: int) -> None:
    """Poll the stats with a deadline: the upstream has no push signal for a parked request."""
    deadline = time.monotonic() + 5.0
    while (await control.stats())["in_flight"] != count:
        if time.monotonic() >= deadline:
            raise AssertionError(f"in_flight never reached {count}")
        await asyncio.sleep(0.01)


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    with _running_upstream() as running:
        yield running


@pytest.fixture(scope="module")
def control(upstream: Upstream) -> Iterator[UpstreamControl]:
    with UpstreamControl(upstream.control_url) as client:
        yield client


@pytest.fixture(autouse=True)
def _normal_and_fresh_stats(control: UpstreamControl) -> None:
    control.set_mode(Mode.NORMAL)
    control.reset_stats()


@pytest.fixture
def tips(upstream: Upstream) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=upstream.tips_url, timeout=TIMEOUT, trust_env=False) as client:
        yield client


@pytest.fixture
async def async_tips(upstream: Upstream) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=upstream.tips_url, timeout=TIMEOUT, trust_env=False
    ) as client:
        yield client


def test_normal_serves_tips_and_limit_truncates(tips: httpx.Client) -> None:
    """Normal mode serves the tips JSON, ?limit=N returns the first N, unknown paths are 404."""
    full = tips.get("/tips")
    assert full.status_code == 200
    assert full.headers["content-type"] == "application/json"
    listed = full.json()["tips"]
    assert [tip["id"] for tip in listed] == list(range(1, 11))
    assert all(isinstance(tip["text"], str) and tip["text"] for tip in listed)
    assert tips.get("/tips", params={"limit": 3}).json() == {"tips": listed[:3]}
    assert tips.get("/tips", params={"limit": 50}).json() == {"tips": listed}
    assert tips.get("/health").json() == {"status": "pass"}
    assert tips.get("/nope").json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("limit", ["0", "51", "ten", "", "-1", "2.5"])
def test_bad_limit_is_400_naming_the_field(tips: httpx.Client, limit: str) -> None:
    """A limit outside 1..50 or not an integer is a 400 whose error names the limit field."""
    response = tips.get("/tips", params={"limit": limit})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
    assert response.json()["error"]["field"] == "limit"


async def test_slow_holds_a_request_then_answers_it_normally(
    upstream: Upstream, async_tips: httpx.AsyncClient
) -> None:
    """Slow mode parks a request for delay_ms, whatever happens meanwhile (a request sent
    after it, in normal mode, is answered first), then answers it normally."""
    async with AsyncUpstreamControl(upstream.control_url) as control:
        assert (await control.set_mode(Mode.SLOW, delay_ms=2000))["delay_ms"] == 2000
        slow = asyncio.create_task(async_tips.get("/tips", params={"limit": 1}))
        await _until_in_flight(control, 1)
        await control.set_mode(Mode.NORMAL)
        overtaking = await async_tips.get("/tips", params={"limit": 1})
        held = (await control.stats())["in_flight"]
        response = await slow
    assert (overtaking.status_code, held) == (200, 1)
    assert response.status_code == 200
    assert len(response.json()["tips"]) == 1


@pytest.mark.parametrize(("status", "expected"), [(None, 503), (500, 500), (502, 502), (429, 429)])
def test_error_answers_the_configured_status(
    control: UpstreamControl, tips: httpx.Client, status: int | None, expected: int
) -> None:
    """Error mode answers every path with the configured status (default 503) and a JSON error."""
    assert control.set_mode(Mode.ERROR, status=status)["status"] == expected
    for path in ("/tips", "/health"):
        response = tips.get(path)
        assert response.status_code == expected
        assert response.json()["error"]["code"] == "injected"


@pytest.mark.parametrize(("next_mode", "expected"), [(Mode.NORMAL, 200), (Mode.ERROR, 503)])
async def test_hang_holds_requests_until_the_mode_changes(
    upstream: Upstream, async_tips: httpx.AsyncClient, next_mode: Mode, expected: int
) -> None:
    """Hung requests stay unanswered until the mode changes, then answer per the new mode."""
    async with AsyncUpstreamControl(upstream.control_url) as control:
        await control.set_mode(Mode.HANG)
        pending = [asyncio.create_task(async_tips.get("/tips")) for _ in range(3)]
        await _until_in_flight(control, 3)
        assert not any(task.done() for task in pending)
        await control.set_mode(next_mode)
        responses = await asyncio.wait_for(asyncio.gather(*pending), timeout=5.0)
        assert [response.status_code for response in responses] == [expected] * 3
        stats = await control.stats()
    assert stats["in_flight"] == 0
    assert stats["max_in_flight"] == 3


@pytest.mark.parametrize("mode", [Mode.HANG, Mode.SLOW])
async def test_client_leaving_frees_a_parked_request(upstream: Upstream, mode: Mode) -> None:
    """A hung or slow request whose client disconnects stops being in flight: no task lingers."""
    async with AsyncUpstreamControl(upstream.control_url) as control:
        await control.set_mode(mode, delay_ms=600_000)
        _, writer = await asyncio.open_connection(HOST, upstream.port)
        writer.write(b"GET /tips HTTP/1.1\r\nHost: upstream\r\n\r\n")
        await writer.drain()
        await _until_in_flight(control, 1)
        writer.close()
        await writer.wait_closed()
        await _until_in_flight(control, 0)
        assert (await control.stats())["responses"] == {}


def _read_health(sock: socket.socket) -> None:
    """Send GET /health on a raw keep-alive connection and read the whole answer."""
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: upstream\r\n\r\n")
    received = b""
    while not received.endswith(b'{"status":"pass"}'):
        chunk = sock.recv(4096)
        assert chunk, f"connection closed after {received!r}"
        received += chunk


def test_refuse_closes_the_tips_port_and_normal_reopens_it(
    upstream: Upstream, control: UpstreamControl, tips: httpx.Client
) -> None:
    """Refuse closes the tips port and its connections while control works; normal reopens it."""
    with socket.create_connection((HOST, upstream.port), timeout=5.0) as open_connection:
        _read_health(open_connection)
        assert control.set_mode(Mode.REFUSE)["mode"] == "refuse"
        assert open_connection.recv(1) == b""
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((HOST, upstream.port), timeout=5.0).close()
    with pytest.raises(httpx.ConnectError):
        tips.get("/tips")
    assert control.mode()["mode"] == "refuse"
    control.set_mode(Mode.NORMAL)
    assert tips.get("/tips", params={"limit": 2}).status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"mode": "sideways"}', "mode"),
        (b"{}", "mode"),
        (b'{"mode": 3}', "mode"),
        (b'{"mode": "slow", "delay_ms": -1}', "delay_ms"),
        (b'{"mode": "slow", "delay_ms": 600001}', "delay_ms"),
        (b'{"mode": "slow", "delay_ms": "100"}', "delay_ms"),
        (b'{"mode": "error", "status": 404}', "status"),
        (b'{"mode": "error", "status": true}', "status"),
        (b'{"mode": "normal", "colour": "red"}', "colour"),
        (b"not json", "body"),
        (b"[1, 2]", "body"),
    ],
)
def test_invalid_mode_change_is_422_naming_the_field(
    upstream: Upstream, control: UpstreamControl, body: bytes, field: str
) -> None:
    """An invalid mode change is a 422 naming the bad field, and the mode stays as it was."""
    with httpx.Client(base_url=upstream.control_url, timeout=TIMEOUT, trust_env=False) as client:
        response = client.put("/mode", content=body)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid"
    assert response.json()["error"]["field"] == field
    assert control.mode()["mode"] == "normal"


def test_control_client_error_names_the_field(control: UpstreamControl) -> None:
    """The control client raises with the failed call and the bad field in its message."""
    with pytest.raises(UpstreamControlError, match=r"PUT .*/mode failed: HTTP 422.*delay_ms"):
        control.set_mode(Mode.SLOW, delay_ms=-5)


def test_stats_count_requests_and_responses(control: UpstreamControl, tips: httpx.Client) -> None:
    """Stats count tips requests and responses by status, not control calls; reset clears them."""
    for _ in range(3):
        tips.get("/tips")
    tips.get("/nope")
    tips.get("/tips", params={"limit": 0})
    control.set_mode(Mode.ERROR, status=502)
    tips.get("/tips")
    assert control.stats() == {
        "requests": 6,
        "responses": {"200": 3, "400": 1, "404": 1, "502": 1},
        "in_flight": 0,
        "max_in_flight": 1,
    }
    control.reset_stats()
    assert control.stats() == {"requests": 0, "responses": {}, "in_flight": 0, "max_in_flight": 0}


async def test_sigterm_with_a_hung_request_exits_promptly() -> None:
    """SIGTERM stops the upstream even while a request hangs (within STOP_TIMEOUT_S, or the
    wait raises), answering the hung request 503."""
    with _running_upstream() as own:
        async with (
            AsyncUpstreamControl(own.control_url) as control,
            httpx.AsyncClient(base_url=own.tips_url, timeout=TIMEOUT, trust_env=False) as client,
        ):
            await control.set_mode(Mode.HANG)
            pending = asyncio.create_task(client.get("/tips"))
            await _until_in_flight(control, 1)
            own.process.send_signal(signal.SIGTERM)
            returncode = await asyncio.to_thread(own.process.wait, STOP_TIMEOUT_S)
            assert returncode == 0
            response = await asyncio.wait_for(pending, timeout=5.0)
            assert response.status_code == 503
