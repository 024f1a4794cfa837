"""Debian packages the image tooling needs (docker.io, debootstrap), installed when missing.

As the Makefile's `system-packages` does for the stack's servers: only as root with apt-get,
without recommends, and without starting the system's own copy of a daemon (a policy-rc.d
that refuses every start, unless the machine already has one).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

POLICY_RC = Path("/usr/sbin/policy-rc.d")
APT_TIMEOUT = 900.0


class AptError(RuntimeError):
    """A package the image tooling needs is missing and could not be installed."""


def ensure_packages(commands: Mapping[str, str]) -> None:
    """Install the package of every command (name -> package) that is not on PATH."""
    missing = sorted({package for command, package in commands.items() if not _found(command)})
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise AptError(f"missing system packages: {' '.join(missing)} (install them as root)")
    guard = not POLICY_RC.exists()
    if guard:
        POLICY_RC.write_text("#!/bin/sh\nexit 101\n")
        POLICY_RC.chmod(0o755)
    try:
        _apt("update", "-qq")
        _apt("install", "-y", "-qq", "--no-install-recommends", *missing)
    finally:
        if guard:
            POLICY_RC.unlink(missing_ok=True)
    still = [command for command in commands if not _found(command)]
    if still:
        raise AptError(f"installed {' '.join(missing)} but still missing: {' '.join(still)}")


def _found(command: str) -> bool:
    """On PATH, or in the sbin directories a non-login root shell may lack."""
    return any(shutil.which(command, path=path) for path in (None, "/usr/sbin:/sbin:/usr/bin"))


def _apt(*args: str) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    result = subprocess.run(
        ["apt-get", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=APT_TIMEOUT,
        check=False,
    )
    if result.returncode != 0:
        raise AptError(f"apt-get {' '.join(args)} failed: {result.stderr.strip()[-2000:]}")
