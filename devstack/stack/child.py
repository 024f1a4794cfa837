"""One child process of the stack: started in its own process group, logged to a file,
stopped gently then firmly, and (when asked) killed by the kernel if its parent dies.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def _die_with_parent(signum: int) -> None:
    """Ask the kernel to send `signum` when the spawning thread exits (Linux only)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signum)


@dataclass
class Child:
    """A managed child process.

    Args:
        name: the service name, used in logs and state.json.
        argv: the command.
        log_path: stdout and stderr are appended there.
        stop_signal: the signal for a graceful stop (PostgreSQL: SIGINT, a fast shutdown).
        user: run as this OS user (PostgreSQL refuses root).
        die_with_parent: have the kernel stop it if the stack process dies (not when detached).
    """

    name: str
    argv: Sequence[str]
    log_path: Path
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    stop_signal: int = signal.SIGTERM
    user: str | None = None
    die_with_parent: bool = True
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # Not thread-safe in general; here it only makes one prctl call before exec.
        on_exec = partial(_die_with_parent, self.stop_signal) if self.die_with_parent else None
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                list(self.argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(self.env) if self.env is not None else None,
                cwd=self.cwd,
                user=self.user,
                group=self.user,
                extra_groups=[] if self.user else None,
                process_group=0,
                preexec_fn=on_exec,  # noqa: PLW1509
            )

    @property
    def pid(self) -> int:
        if self.popen is None:
            raise RuntimeError(f"{self.name} was never started")
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def returncode(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    def resume(self) -> None:
        """SIGCONT the group: undo a pause (SIGSTOP) a fault injection left behind."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGCONT)

    def begin_stop(self) -> None:
        """Send the graceful stop signal (to the leader: it stops its own children)."""
        if self.alive():
            _signal(self.pid, self.stop_signal)

    def finish_stop(self, deadline: float) -> None:
        """Wait until `deadline` (monotonic), then kill the whole process group."""
        if self.popen is None:
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
        kill_group(self.pid)
        self.popen.wait()

    def stop(self, timeout: float) -> None:
        self.begin_stop()
        self.finish_stop(time.monotonic() + timeout)


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def kill_group(pgid: int) -> None:
    """SIGKILL every process left in a group (orphaned workers, PostgreSQL backends)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def tail(path: Path, lines: int = 15) -> str:
    """The last lines of a log, for error messages."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
