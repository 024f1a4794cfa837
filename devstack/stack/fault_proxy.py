"""The fault proxy in the stack: one Toxiproxy-API proxy between the app and each dependency.

The stack starts `python -m devstack.faults.proxy` on a free port with one proxy per
dependency it started (primary, replica, redis, broker, upstream), given as a config file
the way `toxiproxy-server -config` takes one, and rewrites the app's settings to go through
them. The direct addresses stay in `state.json` (each service's `url`), so faults and
checks can still reach the real servers; the proxied ones are the `proxies` of the
`toxiproxy` entry.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from devstack.stack.child import Child
from devstack.stack.ports import free_port
from devstack.stack.waits import StackError, http_ok, wait_until

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parents[2]
# Proxy name -> the stack service it fronts; the broker's service depends on the broker kind.
DEPENDENCIES = (("primary", "primary"), ("replica", "replica"), ("redis", "redis"),
                ("upstream", "upstream"))  # fmt: skip


@dataclass(frozen=True)
class Route:
    """A dependency reached through a proxy: its name, its real port, the one to use."""

    name: str
    upstream_port: int
    listen_port: int

    def as_toxiproxy(self) -> dict[str, object]:
        return {
            "name": self.name,
            "listen": f"{HOST}:{self.listen_port}",
            "upstream": f"{HOST}:{self.upstream_port}",
            "enabled": True,
        }


def proxy_child(log_path: Path, port: int, routes: list[Route]) -> Child:
    """The proxy server, started with its routes (written next to its log)."""
    config = log_path.with_suffix(".json")
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(json.dumps([route.as_toxiproxy() for route in routes], indent=1))
    argv = [sys.executable, "-m", "devstack.faults.proxy", "--host", HOST, "--port", str(port),
            "--config", str(config)]  # fmt: skip
    return Child("toxiproxy", argv, log_path, cwd=ROOT)


def start(child: Child, port: int, routes: list[Route]) -> str:
    """Start the proxy server; its API URL once it serves every route (it reads its config
    just after its API starts answering)."""
    try:
        child.start()
    except OSError as exc:
        raise StackError(f"could not start the fault proxy: {exc}") from exc
    url = f"http://{HOST}:{port}"
    last = f"{url}/proxies/{routes[-1].name}" if routes else f"{url}/version"
    wait_until(child, http_ok(last), what=last)
    return url


def routes_for(services: dict[str, dict[str, Any]], broker_service: str) -> list[Route]:
    """One route per dependency the stack started; the broker gets its own route even when it
    is a database of the same Redis, so "broker down" and "Redis down" are separate faults."""
    routes = []
    for name, service_name in (*DEPENDENCIES, ("broker", broker_service)):
        port = services.get(service_name, {}).get("port")
        if isinstance(port, int):
            routes.append(Route(name, port, free_port()))
    return routes


def rewrite(env: dict[str, str], routes: list[Route]) -> dict[str, str]:
    """The app's settings with every proxied address replaced by its proxy's."""
    by_port = {r.upstream_port: r.listen_port for r in routes if r.name != "broker"}
    by_name = {route.name: route for route in routes}
    out = dict(env)
    for setting in ("DATABASE_URL", "DATABASE_REPLICA_URLS", "REDIS_URL", "TIPS_UPSTREAM_URL"):
        if setting in out:
            out[setting] = _swap_ports(out[setting], by_port)
    if "BROKER_URL" in out and "broker" in by_name:
        broker = by_name["broker"]
        out["BROKER_URL"] = _swap_ports(
            out["BROKER_URL"], {broker.upstream_port: broker.listen_port}
        )
    return out


def _swap_ports(url: str, ports: dict[int, int]) -> str:
    """Replace the port of each `127.0.0.1:<port>` host in a URL (libpq multi-host too)."""
    parts = urlsplit(url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    swapped = []
    for host in hosts.split(","):
        name, _, port = host.rpartition(":")
        known = port.isdigit() and int(port) in ports
        swapped.append(f"{name}:{ports[int(port)]}" if known else host)
    netloc = (f"{userinfo}@" if userinfo else "") + ",".join(swapped)
    return urlunsplit(parts._replace(netloc=netloc))
