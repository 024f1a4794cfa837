"""The bench's progress line on stderr: part, server, round, rate.

    bench http | async service | round 2/3 | 8,412 req/s

On a terminal one line is rewritten in place, showing each measurement as it starts and
its rate when it ends; elsewhere (a CI log) each finished measurement is a line of its own.
"""

from __future__ import annotations

from typing import TextIO


class Progress:
    """Where a run is, on `stream`. `Progress(None)` is silent: what the parts default to."""

    def __init__(self, stream: TextIO | None) -> None:
        self._stream = stream
        self._live = stream is not None and stream.isatty()
        self._open = False  # a live line waiting for its newline

    def show(self, part: str, server: str, step: str, rate: str | None = None) -> None:
        """`rate` None: the measurement has begun (shown on a terminal only)."""
        if self._stream is None or (rate is None and not self._live):
            return
        line = f"bench {part} | {server} | {step} | {rate or 'measuring'}"
        if self._live:
            self._stream.write(f"\r\x1b[K{line}")
            self._open = True
        else:
            self._stream.write(f"{line}\n")
        self._stream.flush()

    def clear(self) -> None:
        """End a live line, before anything else is printed."""
        if self._stream is not None and self._open:
            self._stream.write("\r\x1b[K")
            self._stream.flush()
            self._open = False


def rate(rps: float) -> str:
    return f"{rps:,.0f} req/s"


SILENT = Progress(None)
