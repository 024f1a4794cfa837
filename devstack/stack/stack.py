"""The `Stack`: starts the local services in order, records them, stops them all.

Any service whose URL is given (`external`) is used as is and not started. Every process it
starts is in its own process group, logs to `<run_dir>/logs/<name>.log`, is recorded in
`state.json`, dies with the thread that started it, and is stopped (then killed) by `stop()`.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from devstack.stack import fault_proxy, patroni, postgres, rabbitmq
from devstack.stack.child import Child
from devstack.stack.ports import free_port
from devstack.stack.state import RUN_DIR_MARKER, StateDir, cmdline, start_ticks
from devstack.stack.waits import StackError, http_ok, postgres_accepts, redis_pings, wait_until

EXTERNAL_SETTINGS = (
    "DATABASE_URL",
    "DATABASE_REPLICA_URLS",
    "REDIS_URL",
    "BROKER_URL",
    "TIPS_UPSTREAM_URL",
)
HOST = "127.0.0.1"
_PROCESS_KEYS = ("pid", "cmdline", "start_ticks", "log")


class Stack:
    """Local services on free ports.

    Args:
        state_dir: where `env` and `state.json` are written (`.stack` for the CLI).
        external: settings naming services to use instead of starting them.
        pg_bin: PostgreSQL's bin directory (else found on the machine).
        redis_server: the redis-server binary.
        broker: `redis` (the default: a database of the stack's Redis) or `rabbitmq` (a
            RabbitMQ node of its own) when `BROKER_URL` is not given.
        synchronous_commit: `local` (the default: the replica streams asynchronously), or
            `on` / `remote_apply` to make the replica a synchronous standby, so no commit
            is acknowledged before the replica has it (flushed, or applied and visible).
        fault_proxy: put a Toxiproxy-API fault proxy between the app and every dependency the
            stack started (`TOXIPROXY_URL`; see `devstack/stack/fault_proxy.py`).
        ha: `none` (the default: a primary and a replica, failover by promotion) or `patroni`
            (etcd and `ha_members` Patroni members; see `devstack/stack/patroni.py`).
    """

    def __init__(
        self,
        *,
        state_dir: Path,
        external: Mapping[str, str] | None = None,
        pg_bin: str | None = None,
        redis_server: str | None = None,
        synchronous_commit: str = "local",
        broker: str = "redis",
        fault_proxy: bool = False,
        ha: str = "none",
        ha_members: int = 2,
    ) -> None:
        if ha not in ("none", "patroni") or not 2 <= ha_members <= 3:
            raise StackError(f"ha: none or patroni with 2 or 3 members, not {ha!r}, {ha_members}")
        self.ha, self.ha_members = ha, ha_members
        if broker not in ("redis", "rabbitmq"):
            raise StackError(f"broker: redis or rabbitmq, not {broker!r}")
        self.broker = broker
        self.fault_proxy = fault_proxy
        if synchronous_commit not in postgres.SYNCHRONOUS_COMMIT_LEVELS:
            levels = ", ".join(postgres.SYNCHRONOUS_COMMIT_LEVELS)
            raise StackError(f"synchronous_commit: one of {levels}, not {synchronous_commit!r}")
        self.synchronous_commit = synchronous_commit
        self.state = StateDir(state_dir)
        self.external = {k: v for k, v in (external or {}).items() if k in EXTERNAL_SETTINGS and v}
        self._pg_bin = pg_bin
        self._redis_server = redis_server or shutil.which("redis-server") or "redis-server"
        self.run_dir = Path()
        self.children: dict[str, Child] = {}
        self.services: dict[str, dict[str, Any]] = {}
        self.env: dict[str, str] = {}
        self._ready_checks: dict[str, Callable[[], None]] = {}
        self.serving: str | None = None

    # --- lifecycle --------------------------------------------------------------------
    def start(self) -> dict[str, str]:
        """Start every service not given externally; return the settings that reach them."""
        if pid := self.state.running_supervisor():
            raise StackError(
                f"a stack is already running (pid {pid}): stop it first (python -m devstack down)"
            )
        self.state.clean_stale()
        self.run_dir = Path(tempfile.mkdtemp(prefix="resilient-stack-"))
        self.run_dir.chmod(0o755)  # PostgreSQL's OS user must traverse it
        (self.run_dir / RUN_DIR_MARKER).touch()
        self.env = dict(self.external)
        try:
            self._start_services()
        except BaseException:
            self.stop()
            raise
        self.write_state()
        return dict(self.env)

    def stop(self, timeout: float = 3.0) -> None:
        """Stop every child: all signalled at once, then each waited for and its group killed."""
        children = list(reversed(self.children.values()))
        for child in children:
            child.begin_stop()
        deadline = time.monotonic() + timeout
        for child in children:
            child.finish_stop(deadline)
        self.children.clear()
        self.state.clear()
        if self.run_dir != Path() and (self.run_dir / RUN_DIR_MARKER).exists():
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def __enter__(self) -> Stack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def restart(self, name: str) -> None:
        """Start a dependency again with its data and port (after a test killed or paused it)."""
        child = self.children[name]
        if child.alive():
            child.resume()
            child.stop(timeout=5.0)
        child.start()
        self.add(name, child, **self.service_info(name))
        self.write_state()
        self._ready_checks[name]()

    def heal(self, *, leave_down: frozenset[str] = frozenset()) -> list[str]:
        """Resume paused and restart dead dependencies (but those in `leave_down`, such as a
        primary whose replica was promoted); the names of those restarted."""
        restarted = []
        for name, child in list(self.children.items()):
            if name not in self._ready_checks or name in leave_down:
                continue
            child.resume()
            if not child.alive():
                self.restart(name)
                restarted.append(name)
        return restarted

    def promote(self, name: str = "replica") -> None:
        """Promote a streaming replica to a primary (the failover step after losing one)."""
        if self.ha == "patroni":  # behind Patroni's back, this would make two primaries
            raise StackError("Patroni fails over by itself: see patroni.switchover/kill_member")
        postgres.promote(self.services[name]["port"])

    # --- recording --------------------------------------------------------------------
    def add(self, name: str, child: Child, **info: Any) -> None:
        """Track a started child (also used for web and worker processes) and record it."""
        self.children[name] = child
        self.services[name] = {
            "pid": child.pid,
            "host": HOST,
            **info,
            "log": str(child.log_path),
            "cmdline": cmdline(child.pid),
            "start_ticks": start_ticks(child.pid),
        }

    def service_info(self, name: str) -> dict[str, Any]:
        """What was recorded for `name`, without what changes with each process (pid...)."""
        return {k: v for k, v in self.services[name].items() if k not in _PROCESS_KEYS}

    def write_state(self) -> None:
        """Record the started stack; `serving` is the web URL once it has answered. Under
        Patroni, each member's role is read again first: writing the state refreshes it."""
        if self.ha == "patroni":
            patroni.record_roles(self.services)
        state = {
            "ready": True,
            "serving": self.serving,
            "run_dir": str(self.run_dir),
            "supervisor": {"pid": os.getpid(), "start_ticks": start_ticks(os.getpid())},
            "services": self.services,
        }
        self.state.write(state, self.env)

    def log_path(self, name: str) -> Path:
        return self.run_dir / "logs" / f"{name}.log"

    # --- services ---------------------------------------------------------------------
    def _start_services(self) -> None:
        if "REDIS_URL" not in self.env:
            self._start_redis()
        if "TIPS_UPSTREAM_URL" not in self.env:
            self._start_upstream()
        if "DATABASE_URL" not in self.env:
            self._start_postgres()
        if "BROKER_URL" not in self.env and self.broker == "rabbitmq":
            self._start_rabbitmq()
        self.env.setdefault("BROKER_URL", self.env["REDIS_URL"].rsplit("/", 1)[0] + "/1")
        for name in ("redis", "upstream", "rabbitmq"):
            if name in self._ready_checks:
                self._ready_checks[name]()
        if self.fault_proxy:
            self._start_fault_proxy()

    def _start_fault_proxy(self) -> None:
        port = free_port()
        routes = fault_proxy.routes_for(self.services, self.broker)
        child = fault_proxy.proxy_child(self.log_path("toxiproxy"), port, routes)
        url = fault_proxy.start(child, port, routes)
        proxies = {r.name: r.as_toxiproxy() for r in routes}
        self.add("toxiproxy", child, port=port, url=url, proxies=proxies)
        self.env = fault_proxy.rewrite(self.env, routes)
        self.env["TOXIPROXY_URL"] = url

    def _start_redis(self) -> None:
        port = free_port()
        data_dir = self.run_dir / "redis"
        data_dir.mkdir()
        child = Child(
            "redis",
            [
                self._redis_server,
                "--port",
                str(port),
                "--bind",
                HOST,
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(data_dir),
                "--daemonize",
                "no",
                "--loglevel",
                "warning",
            ],
            self.log_path("redis"),
        )
        _start(child)
        url = f"redis://{HOST}:{port}/0"
        self.add("redis", child, port=port, data_dir=str(data_dir), url=url)
        self._ready_checks["redis"] = lambda: wait_until(child, redis_pings(url), what=url)
        self.env["REDIS_URL"] = url

    def _start_rabbitmq(self) -> None:
        binary = rabbitmq.find_server(os.environ.get("RABBITMQ_SERVER"))
        port, dist_port = free_port(), free_port()
        data_dir = self.run_dir / "rabbitmq"
        child = rabbitmq.server(binary, port=port, dist_port=dist_port, data_dir=data_dir,
                                log_path=self.log_path("rabbitmq"))  # fmt: skip
        _start(child)
        url = rabbitmq.url(port)
        self.add("rabbitmq", child, port=port, data_dir=str(data_dir), url=url)
        self._ready_checks["rabbitmq"] = lambda: wait_until(
            child, rabbitmq.accepts(url), what=url, timeout=60
        )
        self.env["BROKER_URL"] = url

    def _start_upstream(self) -> None:
        port, control_port = free_port(), free_port()
        child = Child(
            "upstream",
            [
                sys.executable,
                "-m",
                "devstack.upstream",
                "--host",
                HOST,
                "--port",
                str(port),
                "--control-port",
                str(control_port),
            ],
            self.log_path("upstream"),
            cwd=Path(__file__).resolve().parents[2],
        )
        _start(child)
        url, control_url = f"http://{HOST}:{port}", f"http://{HOST}:{control_port}"
        self.add(
            "upstream",
            child,
            port=port,
            url=url,
            control_port=control_port,
            control_url=control_url,
        )
        self._ready_checks["upstream"] = lambda: wait_until(
            child, http_ok(f"{control_url}/health"), what=control_url
        )
        self.env["TIPS_UPSTREAM_URL"] = url
        self.env["TIPS_UPSTREAM_CONTROL_URL"] = control_url

    def _start_postgres(self) -> None:
        bindir = postgres.find_bindir(self._pg_bin)
        user = postgres.os_user()
        if self.ha == "patroni":
            patroni.start(self, members=self.ha_members, bindir=bindir, user=user)
            return
        sockets = postgres.own_dir(self.run_dir / "sockets", user)
        primary_dir = postgres.own_dir(self.run_dir / "primary", user)
        postgres.init_primary(bindir, user, primary_dir, sockets)
        primary_port = self._start_server("primary", bindir, user, primary_dir, sockets)
        postgres.create_database(primary_port)
        ports = [primary_port]
        if "DATABASE_REPLICA_URLS" not in self.env:
            replica_dir = postgres.own_dir(self.run_dir / "replica", user)
            postgres.clone_replica(bindir, user, primary_port, replica_dir, slot="replica_1")
            ports.append(self._start_server("replica", bindir, user, replica_dir, sockets))
            postgres.wait_streaming(primary_port)
            self.env["DATABASE_REPLICA_URLS"] = postgres.url(ports[1])
            if self.synchronous_commit != "local":
                postgres.make_synchronous(primary_port, self.synchronous_commit)
        # Both hosts, read-write wanted: after a promotion the new primary is found on reconnect.
        self.env["DATABASE_URL"] = postgres.url(*ports, read_write=True)

    def _start_server(
        self, name: str, bindir: Path, user: str | None, data_dir: Path, sockets: Path
    ) -> int:
        port = free_port()
        child = postgres.server(
            name,
            bindir=bindir,
            user=user,
            data_dir=data_dir,
            port=port,
            sockets=sockets,
            log_path=self.log_path(name),
        )
        _start(child)
        self.add(
            name,
            child,
            port=port,
            data_dir=str(data_dir),
            url=postgres.url(port),
            sockets=str(sockets),
        )
        self._ready_checks[name] = lambda: wait_until(
            child, postgres_accepts(postgres.url(port, database="postgres")), what=f"port {port}"
        )
        self._ready_checks[name]()
        return port


def _start(child: Child) -> None:
    try:
        child.start()
    except OSError as exc:
        raise StackError(f"could not start {child.name} ({child.argv[0]}): {exc}") from exc
