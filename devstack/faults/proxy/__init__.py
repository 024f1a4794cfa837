"""A TCP fault proxy that speaks Toxiproxy's HTTP API, rebuilt on asyncio.

Toxiproxy's clients (toxiproxy-python, chaostoolkit-toxiproxy, `devstack.faults.toxiproxy`)
drive it unchanged, and a real `toxiproxy-server` can stand in for it. Run it with
`python -m devstack.faults.proxy --host 127.0.0.1 --port 8474`; in process:

    server = ToxiproxyServer(host="127.0.0.1", port=0)
    await server.start()        # server.url: the API
    ...
    await server.stop()
"""

from __future__ import annotations

from devstack.faults.proxy.api import VERSION, build_app
from devstack.faults.proxy.collection import ProxyCollection
from devstack.faults.proxy.errors import ApiError
from devstack.faults.proxy.proxy import Proxy
from devstack.faults.proxy.server import ToxiproxyServer
from devstack.faults.proxy.toxics import KINDS, Toxic

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
