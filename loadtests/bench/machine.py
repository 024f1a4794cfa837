"""What a figure was measured on: the versions of everything in the request path, the machine."""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from devstack.stack import postgres
from devstack.stack.waits import StackError

UNKNOWN = "unknown"


@functools.cache
def facts() -> dict[str, Any]:
    """Versions (Python, Django, uvicorn, gunicorn, PostgreSQL, Redis) and the machine's cores,
    CPU model and memory, as the report header shows them."""
    return {
        "versions": {
            "python": platform.python_version(),
            "django": _package("django"),
            "uvicorn": _package("uvicorn"),
            "gunicorn": _package("gunicorn"),
            "postgresql": _postgresql(),
            "redis": _redis(),
        },
        "cores": os.cpu_count() or 1,
        "cpu": _proc_field(Path("/proc/cpuinfo"), "model name") or platform.processor() or UNKNOWN,
        "memory_gib": round(_memory_kib() / 2**20, 1),
    }


def _package(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return UNKNOWN


def _postgresql() -> str:
    try:
        binary = postgres.find_bindir(os.environ.get("PG_BIN")) / "postgres"
    except StackError:
        return UNKNOWN
    # "postgres (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)"
    return _version([str(binary), "--version"], r"\(PostgreSQL\) (\S+)")


def _redis() -> str:
    binary = os.environ.get("REDIS_SERVER") or shutil.which("redis-server")
    if not binary:
        return UNKNOWN
    # "Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=..."
    return _version([binary, "--version"], r"v=(\S+)")


def _version(argv: list[str], pattern: str) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return UNKNOWN
    found = re.search(pattern, out)
    return found.group(1) if found else UNKNOWN


def _proc_field(path: Path, name: str) -> str:
    """The first `name: value` line's value in a /proc file ('' when absent)."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return ""
    for line in lines:
        key, _, value = line.partition(":")
        if key.strip() == name:
            return value.strip()
    return ""


def _memory_kib() -> int:
    found = re.match(r"\d+", _proc_field(Path("/proc/meminfo"), "MemTotal"))
    return int(found.group()) if found else 0
