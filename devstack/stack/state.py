"""`.stack/env` and `.stack/state.json`: where a running stack tells people and tools what
it runs (DESIGN section 3), and how a crashed run's leftovers are found and cleaned.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
from pathlib import Path
from typing import Any

from devstack.stack.child import kill_group

RUN_DIR_MARKER = ".resilient-stack"


def default_state_dir() -> Path:
    """`$STACK_DIR`, else `.stack` in the current directory (the checkout, for `make run`)."""
    return Path(os.environ.get("STACK_DIR") or ".stack")


class StateDir:
    """The directory holding `env` and `state.json` (`.stack/` in the checkout by default)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.env_file = path / "env"
        self.state_file = path / "state.json"

    def write(self, state: dict[str, Any], env: dict[str, str]) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        _atomic_write(self.env_file, export_lines(env))
        _atomic_write(self.state_file, json.dumps(state, indent=2) + "\n")

    def read(self) -> dict[str, Any] | None:
        try:
            return dict(json.loads(self.state_file.read_text()))
        except (OSError, ValueError):
            return None

    def clear(self) -> None:
        for file in (self.env_file, self.state_file):
            file.unlink(missing_ok=True)

    def running_supervisor(self) -> int | None:
        """The pid of the live stack process that wrote the state, if it is still alive."""
        supervisor = (self.read() or {}).get("supervisor", {})
        pid = supervisor.get("pid")
        if not isinstance(pid, int) or pid == os.getpid():
            return None
        return pid if start_ticks(pid, living=True) == supervisor.get("start_ticks") else None

    def clean_stale(self) -> list[str]:
        """Kill what a crashed run left behind and delete its run directory; say what was done."""
        state = self.read()
        if state is None:
            return []
        done = []
        for name, service in state.get("services", {}).items():
            pid = service.get("pid")
            if isinstance(pid, int) and start_ticks(pid) == service.get("start_ticks"):
                kill_group(pid)
                done.append(f"killed leftover {name} (pid {pid})")
        run_dir = Path(state.get("run_dir", ""))
        if run_dir.is_dir() and (run_dir / RUN_DIR_MARKER).exists():
            shutil.rmtree(run_dir, ignore_errors=True)
            done.append(f"removed stale run directory {run_dir}")
        self.clear()
        return done


def export_lines(env: dict[str, str]) -> str:
    return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in sorted(env.items()))


def proc_stat(pid: int) -> list[str] | None:
    """The fields of `/proc/<pid>/stat` after the command name, None when it is gone:
    [0] the state letter, [1] the parent pid, [11] and [12] user and system CPU (clock
    ticks), [19] the start time (clock ticks since boot)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses; the last ")" ends it.
    return stat.rsplit(")", 1)[1].split()


def start_ticks(pid: int, *, living: bool = False) -> int | None:
    """When a process started (clock ticks since boot): with the pid, its identity.

    A pid alone may have been reused by an unrelated process since a crashed run recorded it.
    `living`: None for a zombie too (killed, not yet reaped by its new parent).
    """
    fields = proc_stat(pid)
    if fields is None or (living and fields[0] == "Z"):
        return None
    return int(fields[19])


def cmdline(pid: int) -> str | None:
    """A process's command line as one string, None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return raw.replace(b"\0", b" ").decode(errors="replace").strip() or None


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
