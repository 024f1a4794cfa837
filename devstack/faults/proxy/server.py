"""The API server and its proxies on the running loop (toxiproxy-server's ApiServer)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from aiohttp import web

from devstack.faults.proxy import _addr
from devstack.faults.proxy.api import build_app
from devstack.faults.proxy.collection import ProxyCollection
from devstack.faults.proxy.errors import ApiError

logger = logging.getLogger("devstack.faults.proxy")

SHUTDOWN_TIMEOUT = 2.0  # seconds an API request in progress may take once we stop


class ToxiproxyServer:
    """Toxiproxy's HTTP API on `host:port` (0: a free port; see `url`).

    Open it on the loop that will run the proxies (`await start()`), close it with
    `await stop()`: the API stops, then every proxy stops and drops its connections.
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 8474) -> None:
        self.host = host
        self.port = port
        self.proxies = ProxyCollection()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{_addr.join_host_port(self.host, self.port)}"

    async def start(self) -> None:
        sock = await _addr.bind(_addr.join_host_port(self.host, self.port))
        self.port = sock.getsockname()[1]
        runner = web.AppRunner(
            build_app(self.proxies), access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT
        )
        await runner.setup()
        await web.SockSite(runner, sock, backlog=128).start()
        self._runner = runner
        logger.info("Toxiproxy API listening on %s", self.url)

    async def populate_file(self, path: Path) -> None:
        """Create the proxies of a JSON file as POST /populate would (toxiproxy-server's
        -config); a bad file is logged, not fatal, as there."""
        try:
            body = json.loads(path.read_bytes())  # noqa: ASYNC240 - once, before serving
            async with self.proxies.lock:
                done, error = await self.proxies.populate(body)
        except (OSError, ValueError, ApiError) as exc:
            logger.error("config %s: %s", path, exc)
            return
        if error is not None:
            logger.error("config %s: %s", path, error.message)
        logger.info("populated %d proxies from %s", len(done), path)

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        async with self.proxies.lock:
            await self.proxies.clear()
        if runner is not None:
            logger.info("Toxiproxy API stopped")
