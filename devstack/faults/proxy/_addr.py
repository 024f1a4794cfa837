"""`host:port` strings as Go's net package reads and prints them.

Toxiproxy reports a proxy's `listen` as its listener's real address (`127.0.0.1:41234` for
`127.0.0.1:0`) and compares addresses after resolving them, so these helpers follow
`net.SplitHostPort`, `net.JoinHostPort` and `net.ResolveTCPAddr`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket

from devstack.faults.proxy.errors import ProxyStartError


def split_host_port(addr: str) -> tuple[str, int]:
    """`host:port` (or `[v6]:port`) as a host and a port; an empty port is 0, as in Go."""
    if addr.startswith("["):
        host, sep, rest = addr[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ValueError(f"address {addr}: missing port in address")
        port = rest[1:]
    else:
        host, sep, port = addr.rpartition(":")
        if not sep:
            raise ValueError(f"address {addr}: missing port in address")
        if ":" in host:
            raise ValueError(f"address {addr}: too many colons in address")
    if port == "":
        return host, 0
    if not port.isdigit() or int(port) > 65535:
        raise ValueError(f"address {addr}: invalid port")
    return host, int(port)


def join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def resolve(addr: str) -> str:
    """The address as `net.ResolveTCPAddr(...).String()` prints it: names become IPs (IPv4
    first), an empty host stays empty."""
    host, port = split_host_port(addr)
    if host == "":
        return f":{port}"
    return join_host_port(await _resolve_host(host), port)


async def bind(addr: str) -> socket.socket:
    """A socket bound to `addr` (not yet listening), or the error Go's `net.Listen` gives."""
    try:
        host, port = split_host_port(addr)
    except ValueError as exc:
        raise ProxyStartError(f"listen tcp: {exc}") from exc
    try:
        if host == "":
            return _bind_any(port)
        ip = await _resolve_host(host)
        family = socket.AF_INET6 if ":" in ip else socket.AF_INET
        return _bind(family, ip, port)
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        raise ProxyStartError(f"listen tcp {addr}: bind: {reason}") from exc


def address_of(sock: socket.socket) -> str:
    """A listening socket's address, `[::]:port` for the dual-stack wildcard as in Go."""
    host, port = sock.getsockname()[:2]
    return join_host_port(host, port)


async def _resolve_host(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    if not infos:
        raise OSError(f"lookup {host}: no such host")
    ipv4 = [info for info in infos if info[0] == socket.AF_INET]
    return str((ipv4 or infos)[0][4][0])


def _bind_any(port: int) -> socket.socket:
    """All interfaces, IPv6 and IPv4 together when the kernel allows it (Go's ":port")."""
    if socket.has_ipv6:
        try:
            sock = _bind(socket.AF_INET6, "::", port, dual_stack=True)
        except OSError:
            pass
        else:
            return sock
    return _bind(socket.AF_INET, "0.0.0.0", port)


def _bind(family: int, host: str, port: int, *, dual_stack: bool = False) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # Re-enabling a proxy re-binds its port while old connections sit in TIME_WAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if dual_stack:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((host, port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock
