"""`make run`: the stack, migrations, then the web server, the outbox relay and a Dramatiq
worker, supervised until Ctrl-C/SIGTERM.

A web, worker or relay process that dies is restarted, with a growing delay if it keeps
dying; a dependency that dies is left dead and reported once, so faults stay observable
and the resilience layer is what copes with them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from devstack.stack import haproxy
from devstack.stack.child import Child, kill_group, tail
from devstack.stack.logs import LogEcho
from devstack.stack.ports import free_port, is_listening
from devstack.stack.stack import Stack
from devstack.stack.waits import StackError, http_ok, wait_until

ROOT = Path(__file__).resolve().parents[2]
WEB_STOP_TIMEOUT = 6.5  # uvicorn drains for 5 s (--timeout-graceful-shutdown), then is killed
DEPENDENCY_STOP_TIMEOUT = 3.0
WORKER_ENV = {"dramatiq_worker_timeout": "100"}  # milliseconds


@dataclass
class Supervised:
    """A restartable app process: how to make it, and its restart back-off."""

    name: str
    make: Callable[[], Child]
    child: Child
    started_at: float
    delay: float = 1.0
    restart_at: float | None = None
    held: bool = False  # being restarted on purpose (`Supervisor.restart`): not watched


def app_env(stack: Stack) -> dict[str, str]:
    """The environment of app processes: the caller's, then the stack's settings."""
    env = {**os.environ, **stack.env}
    env["PROMETHEUS_MULTIPROC_DIR"] = str(stack.run_dir / "metrics")
    if sys.stdout.isatty():
        env.setdefault("LOG_FORMAT", "console")
    return env


def migrate(stack: Stack, env: dict[str, str]) -> None:
    log_path = stack.log_path("migrate")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        result = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if result.returncode != 0:
        raise StackError(f"migrations failed: {tail(log_path)}")
    stack.env["API_KEY"] = env["API_KEY"] = create_api_key(env, DEVELOPMENT_KEY)


# The key `make run`, the scenarios and the bench write with, exported as API_KEY: its limit
# is far above what one machine can send, so load is never limited by it.
DEVELOPMENT_KEY = "development"
DEVELOPMENT_KEY_LIMIT = "1000000/1"


def create_api_key(env: dict[str, str], name: str, limit: str = DEVELOPMENT_KEY_LIMIT) -> str:
    """A fresh API key named `name` (`manage.py apikeys`; an existing one is rotated)."""
    result = subprocess.run(
        [sys.executable, "manage.py", "apikeys", "create", name, "--or-rotate", "--quiet",
         "--limit", limit],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise StackError(f"could not create the API key {name!r}: {result.stderr.strip()}")
    return result.stdout.strip()


def uvicorn_argv(host: str, port: int, workers: int) -> list[str]:
    """The web server command: uvicorn on the ASGI app with the service's request limits
    (project/serving.py), no WebSocket protocol (a handshake is refused 403), draining 5 s
    on SIGTERM."""
    return [sys.executable, "-m", "uvicorn", "project.asgi:application", "--host", host,
            "--port", str(port), "--workers", str(workers), "--no-access-log",
            "--http", "project.serving:HttpProtocol", "--ws", "none",
            "--timeout-graceful-shutdown", "5"]  # fmt: skip


def web_child(
    stack: Stack, env: dict[str, str], host: str, port: int, workers: int, *, name: str = "web"
) -> Child:
    return Child(name, uvicorn_argv(host, port, workers), stack.log_path(name), env=env, cwd=ROOT)


def worker_child(stack: Stack, env: dict[str, str], name: str = "worker") -> Child:
    """A Dramatiq worker (`python -m project.worker`: processes, threads from the settings).

    Its threads look for a stop every 0.1 s, not Dramatiq's 1 s (`dramatiq_worker_timeout`,
    unless the environment sets it): a stop or restart on the stack takes half as long.
    """
    argv = [sys.executable, "-m", "project.worker"]
    return Child(name, argv, stack.log_path(name), env={**WORKER_ENV, **env}, cwd=ROOT)


def relay_child(stack: Stack, env: dict[str, str], name: str = "relay") -> Child:
    """The outbox relay (`python -m project.relay`)."""
    argv = [sys.executable, "-m", "project.relay"]
    return Child(name, argv, stack.log_path(name), env=env, cwd=ROOT)


class Supervisor:
    """Starts app processes on a started stack and keeps them running until told to stop."""

    def __init__(self, stack: Stack, *, say: Callable[[str], None]) -> None:
        self.stack = stack
        self.apps: dict[str, Supervised] = {}
        self._say = say
        self._dead_dependencies: set[str] = set()

    def start(self, name: str, make: Callable[[], Child], **info: object) -> Child:
        child = make()
        child.start()
        self.apps[name] = Supervised(name, make, child, time.monotonic())
        self.stack.add(name, child, **info)
        self.stack.write_state()
        return child

    def watch(self, stop: threading.Event, interval: float = 0.5) -> None:
        while not stop.wait(interval):
            for app in self.apps.values():
                self._keep_alive(app)
            self._report_dead_dependencies()

    def restart(self, name: str, timeout: float = WEB_STOP_TIMEOUT + haproxy.DRAIN_DELAY) -> Child:
        """Stop an app process gracefully (its own signal), wait for it to exit, start it
        again at once: a deploy's restart, not a crash (the watch leaves it alone meanwhile)."""
        app = self.apps[name]
        app.held = True
        try:
            app.child.stop(timeout)
            app.child = app.make()
            app.child.start()
            app.started_at, app.restart_at = time.monotonic(), None
            self.stack.add(name, app.child, **self.stack.service_info(name))
            self.stack.write_state()
        finally:
            app.held = False
        return app.child

    def _keep_alive(self, app: Supervised) -> None:
        now = time.monotonic()
        if app.held or app.child.alive():
            return
        if app.restart_at is None:
            kill_group(app.child.pid)  # orphaned workers would hold the port the restart needs
            lived = now - app.started_at
            app.delay = 1.0 if lived > 10 else min(app.delay * 2, 10.0)
            app.restart_at = now + app.delay
            self._say(
                f"{app.name} exited with {app.child.returncode()}; restarting in {app.delay:.0f} s"
            )
        elif now >= app.restart_at:
            app.child = app.make()
            app.child.start()
            app.started_at, app.restart_at = now, None
            self.stack.add(app.name, app.child, **self.stack.service_info(app.name))
            self.stack.write_state()
            self._say(f"{app.name} restarted (pid {app.child.pid})")

    def _report_dead_dependencies(self) -> None:
        for name, child in self.stack.children.items():
            if name in self.apps or name in self._dead_dependencies or child.alive():
                continue
            self._dead_dependencies.add(name)
            self._say(f"{name} exited with {child.returncode()}; left down (the service must cope)")

    def stop(self) -> None:
        """Apps first (they drain against live dependencies), then the stack."""
        apps = [app.child for app in self.apps.values()]
        for child in apps:
            child.begin_stop()
        deadline = time.monotonic() + WEB_STOP_TIMEOUT
        for child in apps:
            child.finish_stop(deadline)
            self.stack.children.pop(child.name, None)
        self.stack.stop(DEPENDENCY_STOP_TIMEOUT)


def serve(
    stack: Stack,
    stop: threading.Event,
    *,
    host: str,
    port: int,
    workers: int,
    say: Callable[[str], None],
    instances: int = 1,
) -> None:
    """Run the whole system until `stop` is set; the stack must not be started yet."""
    if is_listening(host, port):
        raise StackError(f"{host}:{port} is already in use: stop what serves there or set WEB_PORT")
    stack.start()
    echo = LogEcho(stack.run_dir / "logs")
    echo.start()
    supervisor = Supervisor(stack, say=say)
    try:
        url = start_apps(stack, supervisor, app_env(stack), host=host, port=port, workers=workers,
                         instances=instances)  # fmt: skip
        say(f"serving on {url}  (ready: {url}/health/ready, metrics: {url}/metrics); Ctrl-C stops")
        say(f"API key for writes (API_KEY in .stack/env): {stack.env['API_KEY']}")
        supervisor.watch(stop)
    finally:
        say("stopping")
        supervisor.stop()
        echo.stop()


def start_apps(
    stack: Stack,
    supervisor: Supervisor,
    env: dict[str, str],
    *,
    host: str,
    port: int,
    workers: int,
    instances: int = 1,
) -> str:
    """Migrate, then start the web server, the outbox relay and a worker; the web URL once
    it answers `/health/live`. With `instances` > 1: that many web servers, each of
    `workers` processes, behind HAProxy on `host:port`."""
    (stack.run_dir / "metrics").mkdir(exist_ok=True)
    migrate(stack, env)
    if instances > 1:  # relay and worker first: they boot while the instances do
        supervisor.start("relay", lambda: relay_child(stack, env))
        supervisor.start("worker", lambda: worker_child(stack, env))
        url = start_instances(stack, supervisor, env, host=host, port=port, workers=workers,
                              instances=instances)  # fmt: skip
    else:
        url = f"http://{host}:{port}"
        web = supervisor.start(
            "web",
            lambda: web_child(stack, env, host, port, workers),
            port=port,
            url=url,
            workers=workers,
        )
        supervisor.start("relay", lambda: relay_child(stack, env))
        supervisor.start("worker", lambda: worker_child(stack, env))
        wait_until(web, http_ok(f"{url}/health/live"), what=f"{url}/health/live")
    stack.serving = url
    stack.write_state()
    return url


def start_instances(
    stack: Stack,
    supervisor: Supervisor,
    env: dict[str, str],
    *,
    host: str,
    port: int,
    workers: int,
    instances: int,
) -> str:
    """Web servers `web-1`... on free ports, each draining `haproxy.DRAIN_DELAY` s after
    SIGTERM (unless the environment says otherwise), then HAProxy on `host:port` once every
    instance answers; its URL once it has marked them all up."""
    env = {"SHUTDOWN_DRAIN_DELAY": str(haproxy.DRAIN_DELAY), **env}
    members = [haproxy.Instance(f"web-{i}", free_port(host)) for i in range(1, instances + 1)]
    children = [
        supervisor.start(
            m.name,
            lambda m=m: web_child(stack, env, host, m.port, workers, name=m.name),  # type: ignore[misc]
            port=m.port,
            url=f"http://{host}:{m.port}",
            workers=workers,
        )
        for m in members
    ]
    for member, child in zip(members, children, strict=True):
        live = f"http://{host}:{member.port}/health/live"
        wait_until(child, http_ok(live), what=live)
    return haproxy.start(stack, host=host, port=port, instances=members)
