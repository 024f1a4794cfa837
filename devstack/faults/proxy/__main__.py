"""Run the fault proxy: Toxiproxy's HTTP API and its TCP proxies, in one asyncio process.

    python -m devstack.faults.proxy --host 127.0.0.1 --port 8474 [--config proxies.json]

The options are toxiproxy-server's (`-host`, `-port`, `-config`, `-seed` work too), so a
real `toxiproxy-server` can stand in for it. Logs one line per proxy or toxic change;
SIGINT or SIGTERM stops the API, then every proxy, and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from devstack.faults.proxy.errors import ApiError
from devstack.faults.proxy.server import ToxiproxyServer

_LOG_LEVELS = ("debug", "info", "warning", "error")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    if args.seed is not None:
        random.seed(args.seed)  # jitter, slicer sizes and toxicity rolls reproducible
    server = ToxiproxyServer(host=args.host, port=args.port)
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        try:
            runner.run(_serve(server, args.config))
        except (ApiError, OSError) as exc:
            logging.getLogger("devstack.faults.proxy").error("cannot start: %s", exc)
            return 1
    return 0


async def _serve(server: ToxiproxyServer, config: Path | None) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await server.start()
        if config is not None:
            await server.populate_file(config)
        await stop.wait()
    finally:
        await server.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.faults.proxy",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-host", "--host", default="127.0.0.1", help="address of the API")
    parser.add_argument("-port", "--port", type=int, default=8474, help="port of the API")
    parser.add_argument(
        "-config", "--config", type=Path, help="JSON list of proxies to create on start"
    )
    parser.add_argument("-seed", "--seed", type=int, help="seed of the toxics' randomness")
    parser.add_argument("--log-level", default="info", choices=_LOG_LEVELS)
    return parser.parse_args(argv)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop  # noqa: PLC0415 - optional speed-up
    except ImportError:
        return None
    return uvloop.new_event_loop


if __name__ == "__main__":
    sys.exit(main())
