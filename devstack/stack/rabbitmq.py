"""A throw-away RabbitMQ node, for `BROKER_URL=amqp://` (the stack's broker is Redis unless
`STACK_BROKER=rabbitmq`).

Its own node name, ports, data and log directories and an empty plugin list (the machine
may run a RabbitMQ of its own: nothing here touches it; the Erlang port mapper, epmd, is
shared as Erlang intends). Binary: `RABBITMQ_SERVER`, else Debian's
`/usr/lib/rabbitmq/bin/rabbitmq-server`, else `rabbitmq-server` on the PATH.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from devstack.stack.child import Child

_DEBIAN = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")


class RabbitmqError(RuntimeError):
    """RabbitMQ could not be found or started."""


def find_server(configured: str | None) -> str:
    for candidate in (configured, str(_DEBIAN), shutil.which("rabbitmq-server")):
        if candidate and Path(candidate).is_file():
            return candidate
    raise RabbitmqError(
        "rabbitmq-server not found: install it (Debian: rabbitmq-server) or set RABBITMQ_SERVER"
    )


def server(binary: str, *, port: int, dist_port: int, data_dir: Path, log_path: Path) -> Child:
    """The node `stack-<port>@localhost`, listening on 127.0.0.1:`port` (guest/guest)."""
    (data_dir / "mnesia").mkdir(parents=True, exist_ok=True)
    (data_dir / "log").mkdir(exist_ok=True)
    plugins = data_dir / "enabled_plugins"
    plugins.write_text("[].\n")
    env = {
        **os.environ,
        "RABBITMQ_NODENAME": f"stack-{port}@localhost",
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODE_PORT": str(port),
        "RABBITMQ_DIST_PORT": str(dist_port),
        "RABBITMQ_MNESIA_BASE": str(data_dir / "mnesia"),
        "RABBITMQ_LOG_BASE": str(data_dir / "log"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(plugins),
        "RABBITMQ_CONFIG_FILE": str(data_dir / "none"),  # no rabbitmq.conf of the machine's
        "RABBITMQ_PID_FILE": str(data_dir / "rabbitmq.pid"),
    }
    return Child("rabbitmq", [binary], log_path, env=env, cwd=data_dir)


def url(port: int) -> str:
    return f"amqp://guest:guest@127.0.0.1:{port}/%2F"


def accepts(amqp_url: str) -> Callable[[], bool]:
    """Ready once an AMQP connection opens (the port listens before the broker is up)."""

    def probe() -> bool:
        import pika  # noqa: PLC0415 - only needed when RabbitMQ is asked for

        parameters = pika.URLParameters(amqp_url)
        parameters.socket_timeout = 1
        parameters.connection_attempts = 1
        try:
            pika.BlockingConnection(parameters).close()
        except pika.exceptions.AMQPError:
            return False
        return True

    return probe
