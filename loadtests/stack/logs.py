"""Echo of every log file of a run to the terminal, each line prefixed by its service.

Children write straight to their files (a dead or slow terminal never blocks them); this
thread follows the files, so the terminal and `<run_dir>/logs/` hold the same lines.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import TextIO


class LogEcho(threading.Thread):
    def __init__(self, logs_dir: Path, out: TextIO = sys.stdout, interval: float = 0.2) -> None:
        super().__init__(name="log-echo", daemon=True)
        self._dir = logs_dir
        self._out = out
        self._interval = interval
        self._offsets: dict[Path, int] = {}
        self._partial: dict[Path, bytes] = {}
        self._stopped = threading.Event()

    def run(self) -> None:
        while not self._stopped.wait(self._interval):
            self.flush()
        self.flush()

    def stop(self) -> None:
        self._stopped.set()
        self.join(timeout=2)

    def flush(self) -> None:
        for path in sorted(self._dir.glob("*.log")):
            self._echo_new_lines(path)
        self._out.flush()

    def _echo_new_lines(self, path: Path) -> None:
        try:
            with path.open("rb") as file:
                file.seek(self._offsets.get(path, 0))
                data = file.read()
        except OSError:
            return
        if not data:
            return
        self._offsets[path] = self._offsets.get(path, 0) + len(data)
        *lines, rest = (self._partial.pop(path, b"") + data).split(b"\n")
        if rest:
            self._partial[path] = rest
        prefix = f"{path.stem:<9}| "
        for line in lines:
            self._out.write(prefix + line.decode(errors="replace") + "\n")
