"""Peak RSS: a server's whole process tree, sampled while a measurement runs."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from loadtests.bench import rss
from loadtests.bench.rss import PeakRss

MIB = 2**20
# Holds 64 MiB resident (bytearray pages are written: zeroed), says so, waits for stdin to close.
HOLDER = "import sys; b = bytearray(64 * 2**20); print('ready', flush=True); sys.stdin.read()"


@pytest.fixture
def tree() -> Iterator[subprocess.Popen[str]]:
    """A shell whose child holds 64 MiB: the test's own grandchild (`; exit`: the shell waits
    for it rather than exec it)."""
    shell = subprocess.Popen(
        ["/bin/sh", "-c", f'"{sys.executable}" -c "{HOLDER}"; exit'],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert shell.stdout is not None
    assert shell.stdout.readline() == "ready\n"
    yield shell
    shell.communicate(timeout=10)


def test_the_tree_holds_the_process_and_its_descendants(tree: subprocess.Popen[str]) -> None:
    pids = rss.tree(tree.pid)

    assert pids[0] == tree.pid
    assert len(pids) == 2  # the shell and its python


def test_the_peak_sums_the_whole_tree(tree: subprocess.Popen[str]) -> None:
    shell_alone = rss.rss([tree.pid])

    with PeakRss(tree.pid, interval=0.01) as sampled:
        pass

    assert sampled.peak is not None
    assert sampled.peak >= shell_alone + 64 * MIB


def test_a_process_gone_counts_nothing_and_no_pid_gives_no_peak() -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()

    with PeakRss(None) as nothing:
        pass

    assert rss.rss([gone.pid]) == 0
    assert nothing.peak is None


def test_the_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="interval"):
        PeakRss(1, interval=0)
