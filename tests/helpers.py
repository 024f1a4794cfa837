"""Helpers shared by tests: waiting on a condition, making a fault, checking an answer.

Plain functions, imported by name; fixtures live in the `tests/fix_*.py` plugins.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.errors import InvalidInput
from devstack.stack import Stack
from devstack.stack.child import Child

T = TypeVar("T")


def wait_for(
    condition: Callable[[], T],
    timeout: float = 15.0,
    interval: float = 0.1,
    *,
    show: Callable[[], object] | None = None,
) -> T:
    """Poll `condition()` until it returns a truthy value; fail with the last value seen
    (and what `show()` returns then: the state that explains it)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval)
    shown = f"; {show()!r}" if show is not None else ""
    raise AssertionError(f"condition not met within {timeout} s; last value: {last!r}{shown}")


def log_entries(path: Path) -> list[dict[str, Any]]:
    """The JSON lines a process logged (LOG_FORMAT=json); a line that is not one fails."""
    entries = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            entries.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"{path.name}:{number} is not a JSON line: {line!r}") from None
    return entries


def kill(child: Child, signum: int = signal.SIGKILL) -> None:
    os.kill(child.pid, signum)
    if signum == signal.SIGKILL:
        child.popen.wait(timeout=10)  # type: ignore[union-attr]


@contextmanager
def replay_paused(stack: Stack) -> Iterator[None]:
    """The replica receives WAL but applies none of it until the block ends."""
    with psycopg.connect(stack.services["replica"]["url"], autocommit=True) as replica:
        replica.execute("SELECT pg_wal_replay_pause()")
        try:
            yield
        finally:
            replica.execute("SELECT pg_wal_replay_resume()")


def assert_error(response: httpx.Response, status: int, field: str | None) -> dict[str, Any]:
    """The service's one error shape, RFC 9457 problem details (naming `field` when one is
    given); returns the problem."""
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    return assert_problem(response.json(), status, field)


def assert_problem(
    problem: dict[str, Any], status: int, field: str | None = None
) -> dict[str, Any]:
    """A problem details object of `status`: type from its code, title, detail, and `field`
    (an extension member) when the problem is about one."""
    code = problem["code"]
    assert problem["type"] == f"/problems/{code}"
    assert problem["title"] == code.replace("_", " ").capitalize()
    assert problem["status"] == status
    assert problem["detail"]
    expected = {"type", "title", "status", "detail", "code"} | ({"field"} if field else set())
    assert set(problem) == expected, problem
    if field is not None:
        assert problem["field"] == field
    return problem


def rejected(call: Callable[..., Any], *args: Any) -> InvalidInput:
    """The InvalidInput `call(*args)` raises (the test fails if it raises none)."""
    with pytest.raises(InvalidInput) as info:
        call(*args)
    return info.value


def assert_invalid(exc: InvalidInput, status: int, code: str, field: str) -> None:
    """An input error with its answer (status, code) and the field it names."""
    assert (exc.status, exc.code, exc.field) == (status, code, field)
    assert exc.message
    assert str(exc) == f"{field}: {exc.message}"


def metric(exposition: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus text (None when there is no such sample)."""
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return None


def memory_kib(pid: int | str = "self") -> dict[str, int]:
    """A process's resident memory from /proc: now (`VmRSS`) and at its peak (`VmHWM`), KiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields


def reset_peak_memory(pid: int | str = "self") -> int:
    """Start a process's peak (`VmHWM`) afresh at its resident memory now; return that, KiB.

    The kernel's own reset (`clear_refs` 5): a peak measured from here is the peak of what
    runs from here, not of start-up.
    """
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return memory_kib(pid)["VmRSS"]


def project_settings(**overrides: Any) -> SimpleNamespace:
    """The project's settings as read at import, with `overrides` (the environment is not
    read again): what a composition root built in the test process is given."""
    from project import settings

    names = {name: getattr(settings, name) for name in dir(settings) if name.isupper()}
    return SimpleNamespace(**(names | overrides))


def forget_reports(stack: Stack, ids: list[str]) -> None:
    """Delete the reports the run submitted, and their outbox messages: no relay runs here,
    and an unsent message older than OUTBOX_WARN_AGE turns later tests' readiness to warn."""
    with psycopg.connect(stack.services["primary"]["url"], autocommit=True) as conn:
        conn.execute("DELETE FROM outbox WHERE payload->>'report_id' = ANY(%s)", (ids,))
        conn.execute("DELETE FROM reports WHERE id::text = ANY(%s)", (ids,))


# Prepended to `fresh_python`'s code: packages made to look uninstalled, as pip leaves them.
_HIDE = """
import importlib.abc, sys
class Hidden(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {hidden!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, Hidden())
"""


def fresh_python(
    code: str, *, hidden: Collection[str] = (), **env: str
) -> subprocess.CompletedProcess[str]:
    """`code` in a fresh interpreter of this venv, run in the checkout with a bare
    environment (PATH and `env`), the top-level packages `hidden` looking uninstalled."""
    return subprocess.run(
        [sys.executable, "-c", _HIDE.format(hidden=set(hidden)) + code],
        cwd=Path(__file__).resolve().parents[1],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def send_until_cut_off(
    sock: socket.socket, chunk: bytes, *, pace: float = 0.0, limit: int = 1024**3
) -> int:
    """Send `chunk` after `chunk` (every `pace` seconds: the client's own pace) until the
    server resets the connection; the bytes sent. Fails after `limit` bytes or 2,000 sends."""
    sent = 0
    for _ in range(2000):
        try:
            sock.sendall(chunk)
        except (ConnectionResetError, BrokenPipeError):
            return sent
        sent += len(chunk)
        if sent >= limit:
            break
        time.sleep(pace)
    raise AssertionError(f"never cut off: {sent} bytes sent")


_CUT_OFF = re.compile(r"^cut off a client still sending after its answer: (\d+) bytes discarded, "
                      r"bound (.+)$")  # fmt: skip


def cut_off_lines(log: Path) -> list[tuple[int, str]]:
    """(bytes discarded, bound) of each client a server (logging JSON to `log`) cut off
    while lingering after an answer (resilience_async.uvicorn)."""
    found = []
    for line in log.read_text().splitlines():
        if line.startswith("{") and "cut off a client" in line:
            match = _CUT_OFF.match(json.loads(line)["message"])
            assert match, line
            found.append((int(match[1]), match[2]))
    return found
