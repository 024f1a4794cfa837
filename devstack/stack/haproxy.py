"""HAProxy in front of several web instances (`STACK_INSTANCES=N`): its config, its process,
and its admin socket.

The balancer takes an instance out when its readiness (`GET /health/ready`) stops answering
200: on SIGTERM the service fails readiness at once and keeps serving `DRAIN_DELAY` seconds
more, and two failed checks 250-500 ms apart (`CHECK_INTER`, `FASTINTER`, `FALL`) notice it
within about a second, so no request is sent to an instance that stopped accepting.

While no instance passes its check, the balancer fails open (as Envoy's panic threshold
does): every instance gets requests again, through unchecked backup servers, rather than
HAProxy answering 503 itself for an instance that is merely slow to answer its check.

Retries (`RETRIES` on another instance, `option redispatch`) cover a refused connection,
a connection closed without an answer, a server timeout and a 503, but only for requests
that are safe to send twice: every method except POST, and a POST with an `Idempotency-Key`
(the service answers a repeated key with what the first request created). A POST without
one is never resent after it reached an instance: it may have been committed there.

The binary: `HAPROXY`, else `haproxy` on the PATH or Debian's `/usr/sbin/haproxy`, else
Debian's package is installed with apt-get when running as root (as `make system-packages`
does for the other servers), without starting the system's own copy.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from devstack.stack.child import Child
from devstack.stack.waits import wait_until

if TYPE_CHECKING:
    from devstack.stack.stack import Stack

BACKEND = "web"
DRAIN_DELAY = 2.0  # s an instance keeps serving after SIGTERM (its SHUTDOWN_DRAIN_DELAY)
CHECK_INTER = 0.5  # s between health checks of an instance
FASTINTER = 0.25  # s between checks while an instance is changing state
FALL, RISE = 2, 2  # failed / passed checks in a row to mark an instance down / up
RETRIES = 2
FAIL_OPEN_SUFFIX = "-fail-open"
_DEBIAN = Path("/usr/sbin/haproxy")


class HaproxyError(RuntimeError):
    """HAProxy could not be found, installed, started or asked."""


@dataclass(frozen=True)
class Instance:
    """One web instance behind the balancer: its server name and port."""

    name: str
    port: int


def find_binary(configured: str | None) -> str:
    """The haproxy binary; Debian's package is installed when it is missing and we are root."""
    for candidate in (configured, shutil.which("haproxy"), str(_DEBIAN)):
        if candidate and Path(candidate).is_file():
            return candidate
    install()
    if _DEBIAN.is_file():
        return str(_DEBIAN)
    raise HaproxyError("haproxy still missing after apt-get install haproxy")


def install() -> None:
    """`apt-get install haproxy`, with a policy-rc.d that keeps the system's service stopped."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise HaproxyError("haproxy not found: install it (Debian: haproxy) or set HAPROXY")
    guard = Path("/usr/sbin/policy-rc.d")
    placed = not guard.exists()
    if placed:
        guard.write_text("#!/bin/sh\nexit 101\n")
        guard.chmod(0o755)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        for argv in (
            ["apt-get", "update", "-qq"],
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "haproxy"],
        ):
            result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                raise HaproxyError(f"{' '.join(argv)} failed: {result.stderr.strip()[-500:]}")
    finally:
        if placed:
            guard.unlink(missing_ok=True)


def start(
    stack: Stack, *, host: str, port: int, instances: Sequence[Instance], timeout: float = 30.0
) -> str:
    """Start HAProxy on `host:port` in front of `instances`, recorded as the stack's
    `haproxy`; its URL once every instance is marked up."""
    binary = find_binary(os.environ.get("HAPROXY"))
    admin_socket = stack.run_dir / "haproxy.sock"
    config_path = stack.run_dir / "haproxy.cfg"
    config_path.write_text(
        config(host=host, port=port, instances=instances, admin_socket=admin_socket)
    )
    check_config(binary, config_path)
    child = balancer_child(binary, config_path, stack.log_path("haproxy"))
    child.start()
    url = f"http://{host}:{port}"
    stack.add("haproxy", child, port=port, url=url, admin_socket=str(admin_socket),
              config=str(config_path), instances=[i.name for i in instances])  # fmt: skip
    stack.write_state()
    admin = Admin(admin_socket)
    wait_until(child, lambda: _all_up(admin, instances), what=f"{url}: every instance up",
               timeout=timeout)  # fmt: skip
    return url


def _all_up(admin: Admin, instances: Sequence[Instance]) -> bool:
    try:
        servers = admin.servers()
    except HaproxyError:  # not listening yet
        return False
    return all(servers.get(i.name, {}).get("status") == "UP" for i in instances)


def config(*, host: str, port: int, instances: Sequence[Instance], admin_socket: Path) -> str:
    """The whole configuration: one frontend on `host:port`, one backend of `instances`."""
    servers = "\n".join(
        f"    server {instance.name} {host}:{instance.port} check" for instance in instances
    )
    # The same instances again, unchecked, as backups: used only while no instance passes
    # its check (all draining, or all too slow to answer it), so the balancer fails open
    # instead of refusing everything itself; a dead one is skipped by the retries.
    fail_open = "\n".join(
        f"    server {instance.name}{FAIL_OPEN_SUFFIX} {host}:{instance.port} backup"
        for instance in instances
    )
    return f"""\
global
    log stdout format raw local0 info
    stats socket {admin_socket} mode 600 level admin
    maxconn 4096

defaults
    mode http
    log global
    option httplog
    option dontlognull
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    timeout http-request 10s
    timeout http-keep-alive 10s
    timeout check 2s

frontend public
    bind {host}:{port}
    default_backend {BACKEND}

backend {BACKEND}
    balance roundrobin
    option allbackups
    option httpchk GET /health/ready
    http-check expect status 200
    default-server inter {_ms(CHECK_INTER)} fastinter {_ms(FASTINTER)} \
downinter {_ms(CHECK_INTER)} fall {FALL} rise {RISE}
    retries {RETRIES}
    option redispatch 1
    retry-on conn-failure empty-response response-timeout 503
    # A request is resent from HAProxy's copy: the body must be in it before it is sent.
    option http-buffer-request
    # Resent only when sending twice is safe: a POST without a key may have been committed.
    http-request disable-l7-retry if METH_POST !{{ req.hdr(Idempotency-Key) -m found }}
{servers}
{fail_open}
"""


def _ms(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms"


def balancer_child(binary: str, config_path: Path, log_path: Path) -> Child:
    """HAProxy in the foreground (`-db`), logging to its log file."""
    return Child("haproxy", [binary, "-db", "-f", str(config_path)], log_path)


def check_config(binary: str, config_path: Path) -> None:
    result = subprocess.run(
        [binary, "-c", "-q", "-f", str(config_path)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise HaproxyError(f"invalid HAProxy config {config_path}: {result.stderr.strip()}")


class Admin:
    """HAProxy's admin socket: server states and counters, and state changes."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)

    def command(self, line: str, timeout: float = 2.0) -> str:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(timeout)
                sock.connect(self.path)
                sock.sendall(line.encode() + b"\n")
                chunks = []
                while chunk := sock.recv(65536):
                    chunks.append(chunk)
        except OSError as exc:
            raise HaproxyError(f"HAProxy admin socket {self.path}: {line!r}: {exc}") from exc
        return b"".join(chunks).decode()

    def stats(self) -> list[dict[str, str]]:
        """`show stat`: one row per frontend, server and backend (HAProxy's CSV columns)."""
        text = self.command("show stat").lstrip("# ")
        return list(csv.DictReader(io.StringIO(text)))

    def servers(self) -> dict[str, dict[str, str]]:
        """The web instances' rows by server name (`status`: UP, DOWN, MAINT, "UP 1/2"...)."""
        return {
            row["svname"]: row
            for row in self.stats()
            if row["pxname"] == BACKEND
            and row["svname"] not in ("FRONTEND", "BACKEND")
            and row["bck"] == "0"  # not the fail-open backups
        }

    def backend(self) -> dict[str, str]:
        """The backend's row: `wretr` (retries), `wredis` (redispatches), `hrsp_5xx`..."""
        return next(r for r in self.stats() if r["pxname"] == BACKEND and r["svname"] == "BACKEND")

    def status(self, server: str) -> str:
        return self.servers()[server]["status"]

    def set_state(self, server: str, state: str) -> None:
        """`ready`, `drain` (no new requests) or `maint` (none at all)."""
        answer = self.command(f"set server {BACKEND}/{server} state {state}").strip()
        if answer:
            raise HaproxyError(f"set server {server} state {state}: {answer}")

    def wait_status(self, server: str, status: str, timeout: float = 10.0) -> float:
        """Wait until `server`'s status is `status` (UP, DOWN...); the seconds it took."""
        start = time.monotonic()
        deadline = start + timeout
        while time.monotonic() < deadline:
            if self.status(server) == status:
                return time.monotonic() - start
            time.sleep(0.02)
        raise HaproxyError(f"{server} not {status} within {timeout:g} s: {self.status(server)}")
