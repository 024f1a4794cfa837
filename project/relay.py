"""The relay process's composition root: a broker to publish to, and the relay.

python -m project.relay     # until SIGINT or SIGTERM
"""

from __future__ import annotations

import logging
import logging.config
import os
import signal
import threading
from typing import Any

import dramatiq

from project import builders
from workers.outbox_relay import Relay

logger = logging.getLogger("workers.outbox_relay")


class RelayRoot:
    """The relay process: a broker to publish to, and the relay over the primary.

    Args:
        settings: the project's settings.
        broker: where messages go; default: one for `BROKER_URL`.
    """

    def __init__(self, settings: Any, *, broker: dramatiq.Broker | None = None) -> None:
        self.broker = broker or builders.broker(settings)
        self.relay = Relay(
            settings.DATABASE_URL,
            self.broker,
            batch=settings.RELAY_BATCH,
            interval=settings.RELAY_INTERVAL,
            republish_after=settings.JOBS_REPUBLISH_AFTER,
            keep_sent=settings.OUTBOX_KEEP_SENT,
            key_ttl=settings.IDEMPOTENCY_KEY_TTL,
            name=f"relay-{os.getpid()}",
        )

    def run(self, stop: threading.Event) -> None:
        logger.info("%s publishing the outbox to %s", self.relay.name, type(self.broker).__name__)
        self.relay.run(stop)


def main() -> None:
    """Relay until SIGINT or SIGTERM."""
    from project import settings  # noqa: PLC0415 - read when the process starts, not at import

    logging.config.dictConfig(settings.LOGGING)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    RelayRoot(settings).run(stop)


if __name__ == "__main__":
    main()
