"""Run the demo upstream: the tips port and its control port, in one process and loop.

    python -m devstack.upstream --host 127.0.0.1 --port 8001 --control-port 8002

Both ports are uvicorn servers on sockets bound here, so the tips port can be closed
for ``refuse`` and re-bound to the same port later while the control port keeps going.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import signal
import socket
from collections.abc import Callable, Iterator, Sequence

import uvicorn

from devstack.upstream.app import ControlApp, TipsApp
from devstack.upstream.behaviour import Behaviour, Mode, Stats

BACKLOG = 2048
GRACEFUL_SHUTDOWN_S = 0.5
_BIND_RETRY_S = 1.0
_LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves signals to us: two servers share one process."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.ready.set()


class Listener:
    """One uvicorn server on a fixed port that can be closed and re-bound at run time."""

    def __init__(self, config: uvicorn.Config, host: str, port: int) -> None:
        self._config = config
        self._host = host
        self._port = port
        self._server: _QuietServer | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopped = False

    async def open(self) -> None:
        """Bind the port and return once uvicorn serves it."""
        if self._server is not None or self._stopped:
            return
        sock = await _bind(self._host, self._port)
        server = _QuietServer(self._config)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        await _until_started(server, task)
        self._server, self._task = server, task
        if self._stopped:  # stop() ran while we were binding
            await self.close(drop_connections=False)

    async def stop(self) -> None:
        """Shut down for good, letting requests in progress finish (uvicorn's graceful path).

        Marked stopped first: a mode change racing the shutdown must not re-open the port.
        """
        self._stopped = True
        await self.close(drop_connections=False)

    async def close(self, *, drop_connections: bool = True) -> None:
        """Stop accepting now, optionally drop open connections, and wait for uvicorn."""
        server, task = self._server, self._task
        if server is None or task is None:
            return
        self._server = self._task = None
        server.should_exit = True
        for listening in server.servers:
            listening.close()
        if drop_connections:
            for connection in list(server.server_state.connections):
                connection.transport.close()
        await task

    async def follow(self, mode: Mode) -> None:
        """Make the listener match a new mode: closed for ``refuse``, open otherwise."""
        if mode is Mode.REFUSE:
            await self.close()
        else:
            await self.open()


def _listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


async def _bind(host: str, port: int) -> socket.socket:
    """Bind, riding out the moment a just-closed listener still holds the port."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _BIND_RETRY_S
    while True:
        try:
            return _listening_socket(host, port)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE or loop.time() >= deadline:
                raise OSError(exc.errno, f"cannot bind {host}:{port}: {exc.strerror}") from exc
        await asyncio.sleep(0.02)


async def _until_started(server: _QuietServer, task: asyncio.Task[None]) -> None:
    ready = asyncio.create_task(server.ready.wait())
    try:
        await asyncio.wait((ready, task), return_when=asyncio.FIRST_COMPLETED)
    finally:
        ready.cancel()
    if task.done():
        task.result()
        raise RuntimeError("uvicorn stopped before it started serving")


def _config(app: TipsApp | ControlApp, log_level: str) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        http="httptools",
        ws="none",
        lifespan="off",
        interface="asgi3",
        log_level=log_level,
        access_log=False,
        proxy_headers=False,
        server_header=False,
        backlog=BACKLOG,
        # typed int upstream, but only ever handed to asyncio.wait_for, which takes float
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,  # type: ignore[arg-type]
    )


async def _until_signalled() -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def serve(host: str, port: int, control_port: int, log_level: str = "warning") -> None:
    """Serve both ports until SIGINT or SIGTERM."""
    behaviour, stats = Behaviour(), Stats()
    tips = Listener(_config(TipsApp(behaviour, stats), log_level), host, port)
    control_app = ControlApp(behaviour, stats, on_change=tips.follow)
    control = Listener(_config(control_app, log_level), host, control_port)
    try:
        await tips.open()
        await control.open()
        print(
            f"upstream ready tips={_url(host, port)} control={_url(host, control_port)}", flush=True
        )
        await _until_signalled()
    finally:
        behaviour.close()  # hung requests answer now instead of holding up the shutdown
        await asyncio.gather(control.stop(), tips.stop())


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.upstream",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address both ports bind to")
    parser.add_argument("--port", type=int, required=True, help="the tips port")
    parser.add_argument("--control-port", type=int, required=True, help="the control API port")
    parser.add_argument("--log-level", default="warning", choices=_LOG_LEVELS)
    return parser.parse_args(argv)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop  # noqa: PLC0415 - optional speed-up
    except ImportError:
        return None
    return uvloop.new_event_loop


def main(argv: Sequence[str] | None = None) -> None:
    args = _parse_args(argv)
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(serve(args.host, args.port, args.control_port, args.log_level))


if __name__ == "__main__":
    main()
