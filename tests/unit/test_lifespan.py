"""The lifespan shim: start-up, draining shutdown, in-flight tracking and the drain signal."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Iterator
from types import FrameType
from typing import Any

import pytest

from resilience_async import Lifecycle, LifespanApp, Phase
from resilience_async._lifespan import Message, Receive, Scope, Send

WAIT = 2.0  # upper bound for conditions that hold at once when the code is right


@pytest.fixture(autouse=True)
def restore_signal_handlers() -> Iterator[None]:
    """Every test leaves SIGTERM and SIGINT as it found them (start-up replaces them)."""
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)


class Hooks:
    """Start-up and shutdown hooks that record their calls; start-up may fail."""

    def __init__(self, lifecycle: Lifecycle, startup_error: Exception | None = None) -> None:
        self.lifecycle = lifecycle
        self.startup_calls = 0
        self.shutdown_calls = 0
        self.in_flight_at_shutdown: int | None = None
        self._startup_error = startup_error

    async def startup(self) -> None:
        self.startup_calls += 1
        if self._startup_error is not None:
            raise self._startup_error

    async def shutdown(self) -> None:
        self.shutdown_calls += 1
        self.in_flight_at_shutdown = self.lifecycle.in_flight


class BlockingApp:
    """An inner HTTP app that answers only once released."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.finished = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.entered.set()
        await self.release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        self.finished = True


class LifespanDriver:
    """Plays the server's side of the ASGI lifespan protocol through two queues."""

    def __init__(self, app: LifespanApp) -> None:
        self.app = app
        self.to_app: asyncio.Queue[Message] = asyncio.Queue()
        self.from_app: asyncio.Queue[Message] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    def run(self) -> None:
        self.task = asyncio.create_task(
            self.app({"type": "lifespan"}, self.to_app.get, self.from_app.put)
        )

    async def next_message(self) -> Message:
        async with asyncio.timeout(WAIT):
            return await self.from_app.get()

    async def start(self) -> Message:
        self.run()
        await self.to_app.put({"type": "lifespan.startup"})
        return await self.next_message()

    async def request_shutdown(self) -> None:
        await self.to_app.put({"type": "lifespan.shutdown"})

    async def finish(self) -> None:
        assert self.task is not None
        async with asyncio.timeout(WAIT):
            await self.task


def http_scope() -> Scope:
    return {"type": "http", "method": "GET", "path": "/", "headers": []}


async def no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


class ObservedLifecycle(Lifecycle):
    """A Lifecycle that announces when shutdown starts waiting for requests to finish."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting_idle = asyncio.Event()

    async def wait_idle(self) -> None:
        self.waiting_idle.set()
        await super().wait_idle()


def make_app(
    inner: Any = None,
    *,
    startup_error: Exception | None = None,
    shutdown_timeout: float = WAIT,
    drain_delay: float = 0.0,
) -> tuple[LifespanApp, Hooks]:
    lifecycle = ObservedLifecycle()
    hooks = Hooks(lifecycle, startup_error)
    app = LifespanApp(
        inner or BlockingApp(),
        lifecycle=lifecycle,
        startup=hooks.startup,
        shutdown=hooks.shutdown,
        shutdown_timeout=shutdown_timeout,
        drain_delay=drain_delay,
    )
    return app, hooks


async def test_startup_runs_hook_and_serves() -> None:
    """Start-up runs the hook, answers startup.complete and turns the phase to serving."""
    app, hooks = make_app()
    driver = LifespanDriver(app)
    assert app.lifecycle.phase is Phase.STARTING

    assert await driver.start() == {"type": "lifespan.startup.complete"}
    assert hooks.startup_calls == 1
    assert app.lifecycle.phase is Phase.SERVING

    await driver.request_shutdown()
    assert await driver.next_message() == {"type": "lifespan.shutdown.complete"}
    await driver.finish()


async def test_failing_startup_reports_failed_with_message(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A start-up hook that raises answers startup.failed with its message and never serves."""
    app, hooks = make_app(startup_error=ConnectionError("database unreachable"))
    driver = LifespanDriver(app)
    sigterm_before = signal.getsignal(signal.SIGTERM)

    with caplog.at_level(logging.ERROR, logger="resilience_async.lifespan"):
        message = await driver.start()
        await driver.finish()

    assert message == {
        "type": "lifespan.startup.failed",
        "message": "start-up failed: database unreachable",
    }
    assert app.lifecycle.phase is Phase.STARTING
    assert hooks.shutdown_calls == 0
    assert signal.getsignal(signal.SIGTERM) is sigterm_before
    assert any(record.exc_info for record in caplog.records)


async def test_shutdown_waits_for_in_flight_requests() -> None:
    """Shutdown drains: the hook runs only after the in-flight request has ended."""
    inner = BlockingApp()
    app, hooks = make_app(inner)
    driver = LifespanDriver(app)
    await driver.start()

    sent: list[Message] = []

    async def collect(message: Message) -> None:
        sent.append(message)

    request = asyncio.create_task(app(http_scope(), no_body, collect))
    await inner.entered.wait()
    assert app.lifecycle.in_flight == 1

    await driver.request_shutdown()
    assert isinstance(app.lifecycle, ObservedLifecycle)
    async with asyncio.timeout(WAIT):
        await app.lifecycle.waiting_idle.wait()
    assert app.lifecycle.phase is Phase.DRAINING
    assert hooks.shutdown_calls == 0
    assert driver.from_app.empty()

    inner.release.set()
    await request
    assert await driver.next_message() == {"type": "lifespan.shutdown.complete"}
    await driver.finish()

    assert hooks.shutdown_calls == 1
    assert hooks.in_flight_at_shutdown == 0
    assert inner.finished
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert app.lifecycle.phase is Phase.STOPPED


async def test_shutdown_gives_up_on_a_request_that_never_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """After shutdown_timeout the hook runs anyway and the lifespan completes."""
    inner = BlockingApp()
    app, hooks = make_app(inner, shutdown_timeout=0.05)
    driver = LifespanDriver(app)
    await driver.start()

    async def discard(message: Message) -> None:
        return None

    request = asyncio.create_task(app(http_scope(), no_body, discard))
    await inner.entered.wait()

    with caplog.at_level(logging.WARNING, logger="resilience_async.lifespan"):
        await driver.request_shutdown()
        assert await driver.next_message() == {"type": "lifespan.shutdown.complete"}
        await driver.finish()

    assert hooks.shutdown_calls == 1
    assert hooks.in_flight_at_shutdown == 1
    assert app.lifecycle.phase is Phase.STOPPED
    warning = next(r for r in caplog.records if r.levelno == logging.WARNING)
    assert warning.getMessage() == "closing resources with requests still in flight"
    assert warning.__dict__["in_flight"] == 1

    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request
    assert app.lifecycle.in_flight == 0


async def test_shutdown_without_requests_closes_at_once() -> None:
    """With nothing in flight the shutdown hook runs and the phase becomes stopped."""
    app, hooks = make_app()
    driver = LifespanDriver(app)
    await driver.start()

    await driver.request_shutdown()
    assert await driver.next_message() == {"type": "lifespan.shutdown.complete"}
    await driver.finish()

    assert hooks.shutdown_calls == 1
    assert app.lifecycle.phase is Phase.STOPPED


async def test_http_scope_passes_through_to_the_wrapped_app() -> None:
    """An HTTP call reaches the wrapped app with the same scope, receive and send."""
    seen: list[tuple[Scope, Receive, Send]] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append((scope, receive, send))
        await send({"type": "http.response.start", "status": 204, "headers": []})

    sent: list[Message] = []

    async def collect(message: Message) -> None:
        sent.append(message)

    app, _ = make_app(inner)
    scope = http_scope()
    await app(scope, no_body, collect)

    assert seen == [(scope, no_body, collect)]
    assert sent == [{"type": "http.response.start", "status": 204, "headers": []}]
    assert app.lifecycle.in_flight == 0


async def test_while_draining_every_answer_closes_its_connection() -> None:
    """Draining: `Connection: close` on each response (replacing a keep-alive the app set),
    so keep-alive clients leave instead of reusing a connection about to close."""

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"text/plain"), (b"Connection", b"keep-alive")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})

    sent: list[Message] = []

    async def collect(message: Message) -> None:
        sent.append(message)

    app, _ = make_app(inner)
    app.lifecycle.phase = Phase.DRAINING
    await app(http_scope(), no_body, collect)

    assert sent[0]["headers"] == [(b"content-type", b"text/plain"), (b"connection", b"close")]
    assert sent[1] == {"type": "http.response.body", "body": b"ok"}


async def test_in_flight_returns_to_zero_when_the_app_raises() -> None:
    """A request whose app raises propagates the error and is no longer counted."""

    async def broken(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("handler exploded")

    async def discard(message: Message) -> None:
        return None

    app, _ = make_app(broken)
    with pytest.raises(RuntimeError, match="handler exploded"):
        await app(http_scope(), no_body, discard)
    assert app.lifecycle.in_flight == 0


class RecordingHandler:
    """A Python signal handler standing in for the server's, recording its calls."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.called = asyncio.Event()

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.calls.append(signum)
        self.called.set()


async def started_with_recorder(drain_delay: float) -> tuple[LifespanApp, LifespanDriver]:
    app, _ = make_app(drain_delay=drain_delay)
    driver = LifespanDriver(app)
    assert await driver.start() == {"type": "lifespan.startup.complete"}
    return app, driver


async def stop(driver: LifespanDriver) -> None:
    await driver.request_shutdown()
    await driver.next_message()
    await driver.finish()


async def test_startup_wraps_a_callable_previous_sigterm_handler() -> None:
    """After start-up SIGTERM's handler is the shim's drain handler, not the previous one."""
    recorder = RecordingHandler()
    signal.signal(signal.SIGTERM, recorder)
    _, driver = await started_with_recorder(drain_delay=0.0)
    try:
        handler = signal.getsignal(signal.SIGTERM)
        assert callable(handler)
        assert handler is not recorder
        assert handler.__qualname__.startswith("LifespanApp._drain_handler")
    finally:
        await stop(driver)


async def test_startup_leaves_a_non_callable_sigterm_disposition() -> None:
    """A default (non-callable) SIGTERM disposition is not wrapped."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _, driver = await started_with_recorder(drain_delay=0.0)
    try:
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    finally:
        await stop(driver)


async def test_drain_handler_without_delay_drains_and_calls_previous_at_once() -> None:
    """With no drain delay the handler turns to draining and calls the previous handler now."""
    recorder = RecordingHandler()
    signal.signal(signal.SIGTERM, recorder)
    app, driver = await started_with_recorder(drain_delay=0.0)
    try:
        handler = signal.getsignal(signal.SIGTERM)
        assert callable(handler)
        handler(signal.SIGTERM, None)

        assert app.lifecycle.phase is Phase.DRAINING
        assert recorder.calls == [signal.SIGTERM]
    finally:
        await stop(driver)


async def test_delivered_sigterm_goes_through_the_drain_handler() -> None:
    """A real SIGTERM delivered to the process drains and reaches the previous handler."""
    recorder = RecordingHandler()
    signal.signal(signal.SIGTERM, recorder)
    app, driver = await started_with_recorder(drain_delay=0.0)
    try:
        signal.raise_signal(signal.SIGTERM)
        async with asyncio.timeout(WAIT):
            await recorder.called.wait()

        assert app.lifecycle.phase is Phase.DRAINING
        assert recorder.calls == [signal.SIGTERM]
    finally:
        await stop(driver)


async def test_drain_handler_with_delay_calls_previous_later_on_the_loop() -> None:
    """With a drain delay the previous handler runs later, via the loop, not in the handler."""
    recorder = RecordingHandler()
    signal.signal(signal.SIGTERM, recorder)
    app, driver = await started_with_recorder(drain_delay=0.01)
    try:
        handler = signal.getsignal(signal.SIGTERM)
        assert callable(handler)
        handler(signal.SIGTERM, None)

        assert app.lifecycle.phase is Phase.DRAINING
        assert recorder.calls == []
        async with asyncio.timeout(WAIT):
            await recorder.called.wait()
        assert recorder.calls == [signal.SIGTERM]
    finally:
        await stop(driver)


async def test_second_signal_while_draining_calls_previous_at_once() -> None:
    """A second signal during the drain delay is passed on immediately (impatient operator)."""
    recorder = RecordingHandler()
    signal.signal(signal.SIGINT, recorder)
    app, driver = await started_with_recorder(drain_delay=0.01)
    try:
        handler = signal.getsignal(signal.SIGINT)
        assert callable(handler)
        handler(signal.SIGINT, None)
        assert recorder.calls == []

        handler(signal.SIGINT, None)
        assert recorder.calls == [signal.SIGINT]

        recorder.called.clear()
        async with asyncio.timeout(WAIT):
            await recorder.called.wait()
        assert recorder.calls == [signal.SIGINT, signal.SIGINT]
        assert app.lifecycle.phase is Phase.DRAINING
    finally:
        await stop(driver)
