"""The suite leaves the checkout as it found it: a file a test writes into the tree (a
report, a log, a Prometheus file) fails the session, by name.

Compared with `git status --ignored` before and after the session, so a developer's own
uncommitted work is not counted; caches that Python and the tools keep are allowed.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# What running the suite may leave: interpreter and tool caches, the venv and its metadata.
ALLOWED = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".venv"}
_before = pytest.StashKey[set[str]]()


def tree_status() -> set[str] | None:
    """Each changed, untracked or ignored path of the checkout; None outside a git checkout."""
    try:
        done = subprocess.run(
            ["git", "status", "--porcelain", "--ignored", "--untracked-files=all"],
            cwd=ROOT, capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return {line for line in done.stdout.splitlines() if not _allowed(line[3:])}


def _allowed(path: str) -> bool:
    return any(part in ALLOWED or part.endswith(".egg-info") for part in path.split("/"))


def pytest_sessionstart(session: pytest.Session) -> None:
    before = tree_status()
    if before is not None:
        session.stash[_before] = before


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    before = session.stash.get(_before, None)
    after = tree_status() if before is not None else None
    if before is None or after is None:
        return
    stray = sorted(after - before)
    if stray:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line("the suite left files in the checkout:", red=True)
            for line in stray:
                reporter.write_line(f"  {line}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
