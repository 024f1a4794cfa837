"""`bench transport`'s equipment: the closed loop counts only its window, the canned upstream
answers every request (pipelined ones too), and a hidden module fails to import every time."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap

import pytest

from loadtests.bench.transport import canned, loop
from loadtests.bench.transport.client import figures
from loadtests.bench.transport.hiding import hide
from loadtests.bench.transport.loop import measure


async def test_only_answers_within_the_window_count_with_their_latencies() -> None:
    sent = 0

    async def send() -> int:
        nonlocal sent
        sent += 1
        await asyncio.sleep(0.01)
        return 200 if sent % 4 else 503

    window = await measure(send, concurrency=4, warmup=0.05, duration=0.1)

    assert 0 < window.requests < sent  # the warmup's answers left out
    assert set(window.statuses) == {200, 503}
    assert len(window.latencies_s) == window.requests
    assert min(window.latencies_s) >= 0.01
    assert window.duration == pytest.approx(0.1, abs=0.05)
    assert window.cpu >= 0


async def test_failures_count_by_exception_and_do_not_spin(monkeypatch: pytest.MonkeyPatch) -> None:
    """A send that fails at once backs off instead of taking the loop."""
    monkeypatch.setattr(loop, "FAILURE_BACKOFF", 0.01)

    async def send() -> int:
        raise ConnectionResetError

    window = await measure(send, concurrency=2, warmup=0, duration=0.1)

    assert window.requests == 0
    assert 2 <= window.failures["ConnectionResetError"] <= 2 * (0.1 / 0.01 + 2)


async def test_the_loop_refuses_what_it_cannot_measure() -> None:
    async def send() -> int:
        return 200

    with pytest.raises(ValueError, match="concurrency"):
        await measure(send, concurrency=0, warmup=0, duration=1)


async def test_the_canned_upstream_answers_each_request_even_pipelined() -> None:
    response = canned.answer(canned.tips_body())
    server = await asyncio.get_running_loop().create_server(
        lambda: canned.Canned(response), "127.0.0.1", 0
    )
    port = server.sockets[0].getsockname()[1]
    async with server:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        request = b"GET /tips HTTP/1.1\r\nhost: x\r\n\r\n"
        writer.write(request * 2 + request[:10])  # two whole, one begun
        answers = await reader.readexactly(2 * len(response))
        writer.write(request[10:])
        third = await reader.readexactly(len(response))
        writer.close()
        await writer.wait_closed()

    assert answers == response * 2
    assert third == response
    assert response.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b'{"tips":[{"id":1,"text":"Set a timeout' in response
    assert f"content-length: {len(canned.tips_body())}\r\n".encode() in response


def test_a_hidden_module_fails_to_import_every_time_and_others_still_import() -> None:
    script = textwrap.dedent("""
        from loadtests.bench.transport.hiding import hide
        hide(["sniffio"])
        for _ in range(2):
            try:
                import sniffio
            except ModuleNotFoundError:
                print("missed")
        import idna
        print("others import")
    """)
    ran = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True)  # fmt: skip

    assert ran.stdout.split("\n")[:3] == ["missed", "missed", "others import"]


def test_hiding_a_module_already_imported_is_refused_and_a_missing_one_is_left() -> None:
    with pytest.raises(RuntimeError, match="json is imported already"):
        hide(["json"])
    hide(["no_such_module_anywhere"])  # missing already: nothing to do


def test_the_client_prints_its_window_cpu_and_peak_rss() -> None:
    window = loop.Window({200: 3}, {"CallTimeoutError": 1}, [0.001, 0.002, 0.003], 1.5,
                                0.25, 0.05)  # fmt: skip

    printed = figures("aiohttp", window, hidden=["sniffio"])

    assert printed["contender"] == "aiohttp"
    assert printed["hidden"] == ["sniffio"]
    assert (printed["requests"], printed["duration"]) == (3, 1.5)
    assert printed["statuses"] == {"200": 3}
    assert printed["failures"] == {"CallTimeoutError": 1}
    assert printed["latencies_ms"]["p50"] == pytest.approx(2.0)
    assert (printed["cpu_user_s"], printed["cpu_system_s"]) == (0.25, 0.05)
    assert printed["peak_rss_bytes"] > 2**20


def test_the_peak_rss_is_the_process_s_own_not_its_parent_s() -> None:
    """A child started from a larger process reports its own peak, not the parent's."""
    ballast = bytearray(192 * 2**20)
    ballast[:: 2**12] = b"\x01" * len(ballast[:: 2**12])  # resident, page by page
    script = "from loadtests.bench.transport.client import peak_rss; print(peak_rss())"
    ran = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True)  # fmt: skip

    assert 2**20 < int(ran.stdout) < 128 * 2**20
    del ballast
