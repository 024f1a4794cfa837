"""A throw-away single-node etcd: the store Patroni keeps its leader lock in (STACK_HA=patroni).

Debian's `etcd-server` (make install installs it); binary `ETCD_BIN`, else `etcd` on the
PATH. Client and peer ports are free loopback ports, so the machine's own etcd, if any, is
never touched. Patroni talks to it through its v3 gRPC gateway (`/v3/...`).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import httpx

from devstack.stack.child import Child

HOST = "127.0.0.1"


class EtcdError(RuntimeError):
    """etcd could not be found."""


def find_binary(configured: str | None) -> str:
    for candidate in (configured, shutil.which("etcd")):
        if candidate and Path(candidate).is_file():
            return candidate
    raise EtcdError(
        "etcd not found: install it (Debian: etcd-server; make install does) or set ETCD_BIN"
    )


def server(
    binary: str,
    *,
    client_port: int,
    peer_port: int,
    data_dir: Path,
    log_path: Path,
    child_class: type[Child] = Child,
) -> Child:
    """One member cluster `stack-etcd`, serving clients on 127.0.0.1:`client_port`."""
    client, peer = f"http://{HOST}:{client_port}", f"http://{HOST}:{peer_port}"
    argv = [
        binary,
        "--name", "stack-etcd",
        "--data-dir", str(data_dir),
        "--listen-client-urls", client,
        "--advertise-client-urls", client,
        "--listen-peer-urls", peer,
        "--initial-advertise-peer-urls", peer,
        "--initial-cluster", f"stack-etcd={peer}",
        "--initial-cluster-state", "new",
        "--initial-cluster-token", f"stack-{client_port}",
        "--logger", "zap",
        "--log-level", "warn",
    ]  # fmt: skip
    # etcd reads ETCD_* variables as flags: none of the caller's may change this one.
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD_")}
    return child_class("etcd", argv, log_path, env=env, cwd=data_dir.parent)


def url(client_port: int) -> str:
    return f"http://{HOST}:{client_port}"


def healthy(client_url: str) -> Callable[[], bool]:
    """Ready once `/health` says so (it answers false until the member has a leader)."""

    def probe() -> bool:
        try:
            response = httpx.get(f"{client_url}/health", timeout=1)
        except httpx.HTTPError:
            return False
        return response.status_code == 200 and response.json().get("health") == "true"

    return probe
