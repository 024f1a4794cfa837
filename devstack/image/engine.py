"""A Docker engine of our own: `dockerd` with host networking only, started and stopped
around one job (a build, a test), never touching a system engine.

Its socket, exec-root and pidfile live in a fresh short directory under /tmp (a Unix socket
path is bounded at 108 bytes, and containerd's sits inside the exec-root); its data-root is a
cache outside the checkout, so the base image and the built layers are reused by the next
run. One engine at a time may use a data-root: an flock held while it runs.

`--bridge=none --iptables=false --ip-masq=false`: no bridge, no NAT rule, no address for any
container. A container then has the host's network (`--network=host`) or none at all.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO

from devstack.image.apt import ensure_packages
from devstack.image.client import Docker
from devstack.stack.child import Child, tail

START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
LOCK_TIMEOUT = 900.0


class EngineError(RuntimeError):
    """The engine could not start (or its data-root is busy); the message says why."""


class DockerEngine:
    """`with DockerEngine(data_root) as docker:` a running engine and a client for it.

    Args:
        data_root: images, layers and the build cache; kept between runs.
        log_path: dockerd's own log (appended).
    """

    def __init__(self, data_root: Path, *, log_path: Path | None = None) -> None:
        self.data_root = data_root
        self.run_dir = Path(tempfile.mkdtemp(prefix="rd-docker-"))
        self.log_path = log_path or self.run_dir / "dockerd.log"
        self.docker = Docker(f"unix://{self.run_dir}/docker.sock", self.run_dir / "cli")
        self._child: Child | None = None
        self._lock: IO[bytes] | None = None

    def argv(self) -> list[str]:
        config = self.run_dir / "daemon.json"
        config.write_text("{}\n")  # not /etc/docker/daemon.json: nothing of a system engine
        return [
            "dockerd",
            f"--host={self.docker.host}",
            f"--data-root={self.data_root}",
            f"--exec-root={self.run_dir}/exec",
            f"--pidfile={self.run_dir}/docker.pid",
            f"--config-file={config}",
            "--bridge=none",
            "--iptables=false",
            "--ip-masq=false",
            "--ip6tables=false",
        ]

    def start(self, timeout: float = START_TIMEOUT) -> Docker:
        ensure_packages({"dockerd": "docker.io", "docker": "docker.io"})
        self.data_root.mkdir(parents=True, exist_ok=True)
        self._lock = _take_lock(self.data_root.with_name(self.data_root.name + ".lock"))
        self._child = Child("dockerd", self.argv(), self.log_path, env=_sbin_env())
        self._child.start()
        try:
            self._wait_ready(timeout)
            # Containers an earlier run left (killed before it removed them): nothing of
            # theirs is wanted, and they would pin their images in the kept data-root.
            self.docker.run("container", "prune", "--force", timeout=120)
        except BaseException:
            self.stop()
            raise
        return self.docker

    def _wait_ready(self, timeout: float) -> None:
        assert self._child is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._child.alive():
                code = self._child.returncode()
                raise EngineError(f"dockerd exited with {code}: {tail(self.log_path)}")
            if self.docker.run("version", timeout=10, check=False).returncode == 0:
                return
            time.sleep(0.2)
        raise EngineError(f"dockerd not ready within {timeout:.0f} s: {tail(self.log_path)}")

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM dockerd (it stops its containers and its containerd), wait, then kill
        what is left of its process group; release the data-root."""
        if self._child is not None:
            self._child.stop(timeout)
            self._child = None
        if self._lock is not None:
            self._lock.close()
            self._lock = None
        _unmount_under(self.run_dir)
        shutil.rmtree(self.run_dir, ignore_errors=True)

    def __enter__(self) -> Docker:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _take_lock(path: Path, timeout: float = LOCK_TIMEOUT) -> IO[bytes]:
    """An exclusive flock on `path`, waited for up to `timeout` (another run's engine)."""
    handle = path.open("ab")
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return handle
        except BlockingIOError as exc:
            if time.monotonic() > deadline:
                handle.close()
                message = f"{path} stayed locked {timeout:.0f} s (another dockerd)"
                raise EngineError(message) from exc
            time.sleep(0.5)


def _unmount_under(path: Path) -> None:
    """Unmount what dockerd left mounted under `path`: it binds the host's network namespace
    to <exec-root>/netns/default and does not undo it when it stops."""
    prefix = f"{path}/"
    mounted = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    for target in sorted((m for m in mounted if m.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", target], capture_output=True, timeout=30, check=False)


def _sbin_env() -> dict[str, str]:
    """dockerd finds containerd, runc and docker-init on PATH; sbin included."""
    path = os.environ.get("PATH", "/usr/bin:/bin")
    return {**os.environ, "PATH": f"{path}:/usr/local/sbin:/usr/sbin:/sbin"}
