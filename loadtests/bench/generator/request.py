"""The request a run sends, encoded once so the hot loop only writes ready-made bytes."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


@dataclass(frozen=True)
class Target:
    """Where to connect and the exact bytes of every request."""

    host: str
    port: int
    tls: bool
    request: bytes
    head: bool  # responses to HEAD carry no body whatever their headers say


def build_target(
    url: str,
    *,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
) -> Target:
    """Parse `url` and encode the request; invalid input fails here, not mid-run."""
    parts = urlsplit(url)
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"expected an http:// or https:// URL with a host, got {url!r}")
    if not _TOKEN.match(method):
        raise ValueError(f"invalid HTTP method {method!r}")
    port = parts.port or _DEFAULT_PORTS[parts.scheme]
    lines = [f"{method} {_request_target(parts.path, parts.query)} HTTP/1.1"]
    extra = dict(headers or {})
    if not any(name.lower() == "host" for name in extra):
        lines.append(f"Host: {_host_header(parts.hostname, parts.port)}")
    for name, value in extra.items():
        lines.append(_header_line(name, value))
    if body is not None and not any(name.lower() == "content-length" for name in extra):
        lines.append(f"Content-Length: {len(body)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return Target(
        host=parts.hostname,
        port=port,
        tls=parts.scheme == "https",
        request=head + (body or b""),
        head=method.upper() == "HEAD",
    )


def _request_target(path: str, query: str) -> str:
    """Origin-form target: the path (at least '/') plus the query string."""
    return (path or "/") + (f"?{query}" if query else "")


def _host_header(hostname: str, port: int | None) -> str:
    """Host header value as the URL spelled it; IPv6 literals need their brackets back."""
    host = f"[{hostname}]" if ":" in hostname else hostname
    return host if port is None else f"{host}:{port}"


def _header_line(name: str, value: str) -> str:
    """One header line; CR/LF in a value would smuggle a second request into every send."""
    if not _TOKEN.match(name):
        raise ValueError(f"invalid header name {name!r}")
    if "\r" in value or "\n" in value:
        raise ValueError(f"header {name!r} has a line break in its value")
    return f"{name}: {value.strip()}"
