"""The docker command-line client, pointed at one engine and at nothing of the user's."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path


class DockerError(RuntimeError):
    """A docker command failed; the message holds the command and what it printed."""


@dataclass(frozen=True)
class Docker:
    """`docker` against the engine at `host` (unix:///...), with a config directory of its
    own (no credential helper or context of the user's is consulted).

    The legacy builder (DOCKER_BUILDKIT=0): the CLI's BuildKit path needs the buildx
    plug-in, which Debian's docker.io lacks, and the legacy one builds this Dockerfile alike.
    """

    host: str
    config_dir: Path

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DOCKER_HOST": self.host,
            "DOCKER_CONFIG": str(self.config_dir),
            "DOCKER_BUILDKIT": "0",
            "DOCKER_CLI_HINTS": "false",
        }

    def run(
        self, *args: str, timeout: float = 60.0, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """`docker *args`, its output captured; DockerError when it fails and `check`."""
        self.config_dir.mkdir(parents=True, exist_ok=True)
        try:
            result = subprocess.run(
                ["docker", *args],
                env=self.env(),
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise DockerError(f"docker {' '.join(args)} took over {timeout:.0f} s") from exc
        if check and result.returncode != 0:
            output = (result.stdout + result.stderr).strip()[-3000:]
            raise DockerError(f"docker {' '.join(args)} exited {result.returncode}: {output}")
        return result

    def stream(self, *args: str, log_path: Path, timeout: float) -> None:
        """`docker *args` with its output appended to `log_path` (a build's long output)."""
        self.config_dir.mkdir(parents=True, exist_ok=True)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("a") as log:
            try:
                code = subprocess.run(
                    ["docker", *args], env=self.env(), stdout=log, stderr=subprocess.STDOUT,
                    timeout=timeout, check=False,
                ).returncode  # fmt: skip
            except subprocess.TimeoutExpired as exc:
                raise DockerError(f"docker {args[0]} took over {timeout:.0f} s") from exc
        if code != 0:
            tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-25:])
            raise DockerError(f"docker {' '.join(args[:1])} exited {code}:\n{tail}")
