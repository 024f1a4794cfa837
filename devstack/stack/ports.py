"""Free TCP ports below the kernel's ephemeral range.

A port the kernel may hand out as the source of an outgoing connection (32768+ on Linux) can
be taken while its service is down, and then a restart fails with "address in use".
"""

from __future__ import annotations

import random
import socket

LOW, HIGH = 15000, 32000
_handed_out: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A port that is bindable now and was not handed out before by this process."""
    for _ in range(200):
        port = random.randint(LOW, HIGH)  # noqa: S311 - not security sensitive
        if port in _handed_out:
            continue
        if _bindable(host, port):
            _handed_out.add(port)
            return port
    raise RuntimeError(f"no free port found in {LOW}..{HIGH} on {host}")


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def is_listening(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
