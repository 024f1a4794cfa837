"""A TCP fault proxy that speaks Toxiproxy's HTTP API, rebuilt on asyncio.

Toxiproxy's clients (toxiproxy-python, chaostoolkit-toxiproxy, `loadtests.faults.toxiproxy`)
drive it unchanged, and a real `toxiproxy-server` can stand in for it. Run it with
`python -m loadtests.faults.proxy --host 127.0.0.1 --port 8474`; in process:

    server = ToxiproxyServer(host="127.0.0.1", port=0)
    await server.start()        # server.url: the API
    ...
    await server.stop()
"""

from __future__ import annotations

from loadtests.faults.proxy.api import VERSION, build_app
from loadtests.faults.proxy.collection import ProxyCollection
from loadtests.faults.proxy.errors import ApiError
from loadtests.faults.proxy.proxy import Proxy
from loadtests.faults.proxy.server import ToxiproxyServer
from loadtests.faults.proxy.toxics import KINDS, Toxic

__all__ = [
    "KINDS",
    "VERSION",
    "ApiError",
    "Proxy",
    "ProxyCollection",
    "Toxic",
    "ToxiproxyServer",
    "build_app",
]
