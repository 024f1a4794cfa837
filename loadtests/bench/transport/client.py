"""`bench transport`'s client process: one contender keeping requests in flight to the upstream.

    TIPS_UPSTREAM_URL=http://127.0.0.1:8100 python -m loadtests.bench.transport.client \\
        httpx --concurrency 64 --warmup 1 --duration 5 [--hide sniffio]

The upstream is the service's setting, read from the environment as every other one. The
bench pins this process to one core. It prints `opened` as the measured window opens (the
bench then starts counting the upstream's CPU), and one JSON line once it has closed: the
answers by status, failures by exception, latency percentiles, this process's CPU over the
window and its peak RSS. The process runs as the service's does: on uvloop, with its GC
settings, start-up frozen out of later collections.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from loadtests.bench.generator.result import summarize
from loadtests.bench.transport.hiding import hide
from loadtests.bench.transport.loop import Window, measure

OPENED = "opened"
CHOICES = ("httpx", "aiohttp", "raw")  # contenders.NAMES, not imported before hiding
KIB = 1024


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    hide(args.hide)
    import uvloop  # noqa: PLC0415 - the service's loop

    window = uvloop.run(_measure(args.contender, args.concurrency, args.warmup, args.duration))
    print(json.dumps(figures(args.contender, window, hidden=args.hide)), flush=True)
    return 0


async def _measure(contender: str, concurrency: int, warmup: float, duration: float) -> Window:
    # Imported only now, after hiding: nothing they import may find a hidden module.
    from loadtests.bench.transport import contenders  # noqa: PLC0415
    from project import settings  # noqa: PLC0415
    from resilience_async import tune_gc_for_serving  # noqa: PLC0415

    async with AsyncExitStack() as closing:
        send = await contenders.sender(contender, settings, closing)
        tune_gc_for_serving(settings.GC_GEN0_THRESHOLD)  # as the service, after start-up
        return await measure(send, concurrency=concurrency, warmup=warmup, duration=duration,
                             opened=lambda: print(OPENED, flush=True))  # fmt: skip


def figures(contender: str, window: Window, *, hidden: Sequence[str] = ()) -> dict[str, Any]:
    """What the process prints: the window's figures, its CPU seconds and its peak RSS."""
    latencies = summarize(window.latencies_s)
    return {
        "contender": contender,
        "hidden": list(hidden),
        "sniffio_loaded": "sniffio" in sys.modules,
        "requests": window.requests,
        "duration": window.duration,
        "statuses": {str(status): count for status, count in window.statuses.items()},
        "failures": dict(window.failures),
        "latencies_ms": vars(latencies),
        "cpu_user_s": window.cpu_user,
        "cpu_system_s": window.cpu_system,
        "peak_rss_bytes": peak_rss(),
    }


def peak_rss() -> int:
    """This process's peak RSS in bytes (VmHWM). Not getrusage's ru_maxrss: Linux carries
    that across fork and exec, so it would report the bench's own RSS when larger."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * KIB
    return 0


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m loadtests.bench.transport.client")
    parser.add_argument("contender", choices=CHOICES)
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds first")
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds")
    parser.add_argument("--hide", action="append", default=[], metavar="MODULE",
                        help="a module to make unimportable, as if not installed")  # fmt: skip
    return parser


if __name__ == "__main__":
    sys.exit(main())
