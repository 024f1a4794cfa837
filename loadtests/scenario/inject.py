"""Fault kinds → what they do to the running system, each returning its undo.

The runner holds the stack and the supervisor of the app processes, so a killed dependency
can be started again on its data and port, and a killed app process is restarted by the
supervisor (as under `make run`). Network faults go through the stack's fault proxy, with
Toxiproxy's API; process and database faults through `devstack.faults` (signals, database).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from devstack.faults import database, signals
from devstack.faults.toxiproxy import ToxiproxyClient
from devstack.stack import Stack, haproxy
from devstack.stack.supervisor import Supervisor
from devstack.stack.waits import http_ok
from devstack.upstream import UpstreamControl
from loadtests.scenario.leader import LeaderFaults

logger = logging.getLogger(__name__)

Undo = Callable[[], None]
APPS = ("web", "worker", "relay")
# The settings of an `upstream_mode` fault passed on to the demo upstream (`ModeState`).
UPSTREAM_MODE_SETTINGS = ("delay_ms", "status", "jitter_ms", "tail_ms", "tail_every")
BACK_UP_TIMEOUT = 30.0  # s for an instance to be restarted, ready, and UP in HAProxy again


class FaultLike(Protocol):
    name: str
    kind: str
    target: str
    params: dict[str, Any]


class InjectionError(RuntimeError):
    """A fault could not be applied; the message names the fault and the target."""


class Injector:
    """Applies faults to one running system.

    Args:
        stack: the started stack (dependencies, fault proxy, recorded app processes).
        supervisor: the app processes' supervisor (a rolling restart goes through it).
        stop: set when the run is interrupted (a leader fault then stops waiting).
    """

    def __init__(
        self,
        stack: Stack,
        supervisor: Supervisor | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.stack = stack
        self.supervisor = supervisor
        self.promoted = False
        # What the balancer did about each instance fault: seconds from the signal until
        # HAProxy marked the instance DOWN, until it exited, until it was UP again.
        self.instance_events: list[dict[str, Any]] = []
        # Requests the demo upstream had seen when each `upstream_mode` fault began and ended.
        self.upstream_requests: dict[str, tuple[int, int | None]] = {}
        self._proxy = ToxiproxyClient(stack.env["TOXIPROXY_URL"])
        # Faults on the Patroni leader (target "leader"), on a Patroni stack only.
        self.leader: LeaderFaults | None = None
        if stack.ha == "patroni":
            self.leader = LeaderFaults(stack, stop or threading.Event())

    def _leader(self) -> LeaderFaults:
        if self.leader is None:
            raise InjectionError('target "leader" needs the Patroni stack (ha = "patroni")')
        return self.leader

    def apply(self, fault: FaultLike) -> Undo:
        action = getattr(self, f"_{fault.kind}", None)
        if action is None:
            raise InjectionError(f"{fault.name}: no fault kind {fault.kind!r}")
        try:
            undo: Undo = action(fault)
        except (OSError, RuntimeError, ValueError) as exc:
            raise InjectionError(f"{fault.name} ({fault.kind} {fault.target}): {exc}") from exc
        return undo

    # --- processes ------------------------------------------------------------------------
    def _service(self, target: str) -> str:
        """The stack service a target names (the broker is Redis or RabbitMQ)."""
        if target == "broker":
            return "rabbitmq" if "rabbitmq" in self.stack.children else "redis"
        if target not in self.stack.children:
            raise InjectionError(f"no running service {target!r}")
        return target

    def _pid(self, target: str) -> int:
        return self.stack.children[self._service(target)].pid

    def _kill(self, fault: FaultLike) -> Undo:
        if fault.target == "leader":
            return self._leader().kill(fault)
        name = self._service(fault.target)
        if name in APPS and fault.params.get("processes") == "children":
            signals.kill_worker_processes(self._pid(name), name=name)  # the master replaces them
            return _nothing
        signals.kill(self._pid(name), name=name)
        return self._restart_later(name) if fault.params.get("restart", True) else _nothing

    def _stop(self, fault: FaultLike) -> Undo:
        name = self._service(fault.target)
        self.stack.children[name].stop(timeout=10.0)
        return self._restart_later(name) if fault.params.get("restart", True) else _nothing

    def _pause(self, fault: FaultLike) -> Undo:
        if fault.target == "leader":
            return self._leader().pause(fault)
        name = self._service(fault.target)
        pid = self._pid(name)
        signals.pause(pid, name=name)
        return lambda: signals.resume(pid, name=name)

    def _restart_later(self, name: str) -> Undo:
        """App processes come back through their supervisor; a dependency is started again,
        except the primary once its replica has been promoted (two primaries: split brain)."""
        if name in APPS:
            return _nothing

        def restart() -> None:
            if name == "primary" and self.promoted:
                logger.info("primary left down: its replica was promoted")
                return
            self.stack.restart(name)

        return restart

    def _switchover(self, fault: FaultLike) -> Undo:
        return self._leader().switchover(fault)

    # --- instances behind HAProxy ---------------------------------------------------------
    def _admin(self) -> haproxy.Admin:
        if "haproxy" not in self.stack.services:
            raise InjectionError("no HAProxy: the scenario needs system.instances >= 2")
        return haproxy.Admin(self.stack.services["haproxy"]["admin_socket"])

    def _kill_instance(self, fault: FaultLike) -> Undo:
        """SIGKILL one instance; wait until HAProxy marks it DOWN, and (restarted by the
        supervisor) UP again: the fault lasts that long."""
        name = f"web-{int(fault.params.get('instance', 1))}"
        admin, child = self._admin(), self.stack.children[name]
        signals.kill(child.pid, name=name)
        killed = time.monotonic()
        down = admin.wait_status(name, "DOWN", timeout=BACK_UP_TIMEOUT)
        self._back_up(admin, name, since=killed)
        self.instance_events.append(
            {"fault": fault.name, "instance": name, "signal": "SIGKILL", "down_after": down,
             "exited_after": 0.0, "up_after": time.monotonic() - killed}
        )  # fmt: skip
        return _nothing

    def _rolling_restart(self, fault: FaultLike) -> Undo:
        """Each instance in turn: SIGTERM, wait for it to exit, start it, wait until HAProxy
        marks it UP, let it warm up `settle` s (a deploy's minimum ready time), then the
        next; the fault lasts until the last one is back and settled."""
        if self.supervisor is None:
            raise InjectionError("a rolling restart needs the app supervisor")
        admin = self._admin()
        settle = float(fault.params.get("settle", 0.0))
        for index, name in enumerate(self.stack.services["haproxy"]["instances"]):
            if index:
                time.sleep(settle)
            signalled = time.monotonic()
            down: list[float] = []
            watcher = _thread(f"down {name}", lambda n=name, d=down: d.append(  # type: ignore[misc]
                admin.wait_status(n, "DOWN", timeout=10)))  # fmt: skip
            self.supervisor.restart(name)  # SIGTERM, wait for the exit, start
            exited = time.monotonic() - signalled
            watcher.join(timeout=10)
            self._back_up(admin, name, since=signalled)
            self.instance_events.append(
                {"fault": fault.name, "instance": name, "signal": "SIGTERM",
                 "down_after": down[0] if down else None, "exited_after": exited,
                 "up_after": time.monotonic() - signalled}
            )  # fmt: skip
        return _nothing

    def _back_up(self, admin: haproxy.Admin, name: str, *, since: float) -> None:
        ready = http_ok(f"{self.stack.services[name]['url']}/health/ready")
        deadline = since + BACK_UP_TIMEOUT
        while not ready():
            if time.monotonic() > deadline:
                raise InjectionError(f"{name} not ready {BACK_UP_TIMEOUT:g} s after the fault")
            time.sleep(0.1)
        admin.wait_status(name, "UP", timeout=max(1.0, deadline - time.monotonic()))

    # --- PostgreSQL -----------------------------------------------------------------------
    def _url(self, target: str) -> str:
        return str(self.stack.services[target]["url"])

    def _promote(self, fault: FaultLike) -> Undo:
        database.promote(self._url(fault.target))
        self.promoted = True
        return _nothing

    def _pause_replay(self, fault: FaultLike) -> Undo:
        url = self._url(fault.target)
        database.pause_replay(url)
        return lambda: database.resume_replay(url)

    def _terminate_backends(self, fault: FaultLike) -> Undo:
        """Kill random app connections, once or `every` seconds until undone."""
        url, count = self._url(fault.target), int(fault.params.get("count", 1))
        every = fault.params.get("every")
        database.terminate_backends(url, count=count)
        if not every:
            return _nothing
        stop = threading.Event()

        def repeat() -> None:
            while not stop.wait(float(every)):
                try:
                    database.terminate_backends(url, count=count)
                except Exception:  # the database may be down too: keep trying
                    logger.exception("terminate_backends on %s", fault.target)

        thread = threading.Thread(target=repeat, name=f"fault {fault.name}", daemon=True)
        thread.start()

        def undo() -> None:
            stop.set()
            thread.join()

        return undo

    # --- network --------------------------------------------------------------------------
    def _toxic(self, fault: FaultLike) -> Undo:
        params = fault.params
        name = self._proxy.add_toxic(
            fault.target,
            str(params["type"]),
            stream=str(params.get("stream", "downstream")),
            toxicity=float(params.get("toxicity", 1.0)),
            attributes=dict(params.get("attributes", {})),
            name=fault.name,  # two faults of one type on one proxy must not collide
        )
        return lambda: self._proxy.remove_toxic(fault.target, name)

    def _proxy_down(self, fault: FaultLike) -> Undo:
        self._proxy.set_enabled(fault.target, enabled=False)

        def undo() -> None:
            self._proxy.set_enabled(fault.target, enabled=True)

        return undo

    def _upstream_mode(self, fault: FaultLike) -> Undo:
        control_url = self.stack.env["TIPS_UPSTREAM_CONTROL_URL"]
        params = fault.params
        settings = {key: params.get(key) for key in UPSTREAM_MODE_SETTINGS}
        with UpstreamControl(control_url) as control:
            control.set_mode(str(params["mode"]), **settings)
            self.upstream_requests[fault.name] = (control.stats()["requests"], None)

        def undo() -> None:
            with UpstreamControl(control_url) as control:
                began = self.upstream_requests[fault.name][0]
                self.upstream_requests[fault.name] = (began, control.stats()["requests"])
                control.set_mode("normal")

        return undo

    def _surge(self, fault: FaultLike) -> Undo:
        """The load surges (its stages say how): nothing to do to the system."""
        return _nothing


def _thread(name: str, target: Callable[[], None]) -> threading.Thread:
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread


def _nothing() -> None:
    return None
