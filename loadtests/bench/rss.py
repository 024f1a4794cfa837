"""A server's memory under load: the peak RSS of its whole process tree, sampled from /proc.

The tree is the server's process and every descendant (a gunicorn master and its workers),
found again at each sample so a worker started meanwhile counts. Each process's RSS counts
whole, pages shared with its parent included: what `ps` shows, summed. Sampled every
`interval` seconds, a spike shorter than that can pass unseen.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from types import TracebackType

from devstack.stack.state import proc_stat

PROC = Path("/proc")
PAGE = os.sysconf("SC_PAGE_SIZE")


def tree(root: int) -> list[int]:
    """`root` and its descendants' pids, `root` first (just `[root]` when it has none)."""
    parents: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            parent = _parent(entry)
            if parent is not None:
                parents.setdefault(parent, []).append(int(entry.name))
    found, queue = [root], [root]
    while queue:
        children = parents.get(queue.pop(), [])
        found.extend(children)
        queue.extend(children)
    return found


def rss(pids: list[int]) -> int:
    """Bytes resident in `pids`, summed; a process gone meanwhile counts nothing."""
    total = 0
    for pid in pids:
        try:
            total += int((PROC / str(pid) / "statm").read_text().split()[1]) * PAGE
        except (OSError, IndexError, ValueError):
            continue
    return total


class PeakRss:
    """Samples the RSS of `pid`'s process tree in a thread for the length of a `with` block.

    `peak` (bytes) is the largest sum seen, None when no `pid` was given.
    """

    def __init__(self, pid: int | None, *, interval: float = 0.1) -> None:
        if interval <= 0:
            raise ValueError(f"interval must be positive, got {interval}")
        self._pid = pid
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="peak-rss", daemon=True)
        self.peak: int | None = None

    def __enter__(self) -> PeakRss:
        if self._pid is not None:
            self._take()
            self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._pid is not None:
            self._stop.set()
            self._thread.join()
            self._take()

    def _sample(self) -> None:
        while not self._stop.wait(self._interval):
            self._take()

    def _take(self) -> None:
        if self._pid is not None:
            self.peak = max(self.peak or 0, rss(tree(self._pid)))


def _parent(entry: Path) -> int | None:
    fields = proc_stat(int(entry.name))
    return None if fields is None else int(fields[1])
