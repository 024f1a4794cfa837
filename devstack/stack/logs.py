"""Echo of every log file of a run to the terminal, each line prefixed by its service.

Children write straight to their files (a dead or slow terminal never blocks them); this
thread follows the files, so the terminal and `<run_dir>/logs/` hold the same lines.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import BinaryIO, TextIO


class LogEcho(threading.Thread):
    def __init__(self, logs_dir: Path, out: TextIO = sys.stdout, interval: float = 0.2) -> None:
        super().__init__(name="log-echo", daemon=True)
        self._dir = logs_dir
        self._out = out
        self._interval = interval
        # Open handles: a run directory deleted at shutdown can still be read to its end.
        self._files: dict[Path, BinaryIO] = {}
        self._partial: dict[Path, bytes] = {}
        self._stopped = threading.Event()

    def run(self) -> None:
        while not self._stopped.wait(self._interval):
            self.flush()
        self.flush()
        for file in self._files.values():
            file.close()

    def stop(self) -> None:
        self._stopped.set()
        self.join(timeout=2)

    def flush(self) -> None:
        if self._dir.is_dir():
            for path in sorted(self._dir.glob("*.log")):
                if path not in self._files:
                    self._files[path] = path.open("rb")
        for path, file in self._files.items():
            self._echo_new_lines(path, file.read())
        self._out.flush()

    def _echo_new_lines(self, path: Path, data: bytes) -> None:
        if not data:
            return
        *lines, rest = (self._partial.pop(path, b"") + data).split(b"\n")
        if rest:
            self._partial[path] = rest
        prefix = f"{path.stem:<9}| "
        for line in lines:
            self._out.write(prefix + line.decode(errors="replace") + "\n")
