"""Faults on a Patroni cluster's leader (`target = "leader"`), and the cluster's state after.

The leader is whoever holds Patroni's lock when the fault starts, asked of the members'
REST API then, not a name fixed when the stack started: an earlier fault may have moved it.
A member is two process trees, Patroni and the PostgreSQL it runs in a session of its own
(and each PostgreSQL child in a session of its own again), so a crash or a freeze hits
Patroni's group, the postmaster and every child of it: a SIGSTOP to the postmaster alone
leaves its backends committing, and to Patroni alone leaves PostgreSQL serving.

Each fault watches for the leader to change and records when the new one first ran: the
SLO "first acknowledged write on the new leader" counts from the fault to the first write
acknowledged after that moment. A killed or frozen leader is given back (restarted,
resumed) only once a new leader runs: earlier, it would still hold its own lock and take
the cluster back, and the run would test no failover. A fault's undo returns once every
member streams again, so its window in the report spans the whole disruption.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from devstack.stack import Stack, patroni

POLL = 0.1  # s between looks at the cluster while a leader change is awaited
NEW_LEADER_TIMEOUT = 3 * patroni.TTL  # a dead leader's lock expires after one TTL
SETTLE_TIMEOUT = 90.0  # for every member to be back, streaming, once the run is over


class FaultLike(Protocol):
    name: str
    kind: str
    target: str
    params: dict[str, Any]


@dataclass
class LeaderChange:
    """One fault's leader change: `at` is the unix time the new leader was first seen
    running, None while (or if) none has."""

    fault: str
    old: str
    new: str | None = None
    at: float | None = None
    seen: threading.Event = field(default_factory=threading.Event, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {"fault": self.fault, "old": self.old, "new": self.new, "at": self.at}


class LeaderFaults:
    """Kill, freeze or switch over the current leader of the stack's Patroni cluster.

    Args:
        stack: a started stack with `ha = "patroni"`.
        stop: set when the run is interrupted: no more waiting for a new leader.
    """

    def __init__(self, stack: Stack, stop: threading.Event) -> None:
        urls = stack.env.get("DATABASE_PATRONI_URLS", "")
        if stack.ha != "patroni" or not urls:
            raise RuntimeError('target "leader" needs the Patroni stack (ha = "patroni")')
        self.stack, self.stop = stack, stop
        self.api_urls = urls.split(",")
        self.changes: list[LeaderChange] = []

    # --- faults ---------------------------------------------------------------------------
    def kill(self, fault: FaultLike) -> Callable[[], None]:
        """SIGKILL the leader's Patroni and PostgreSQL; restarted (it rejoins as a replica)
        once a new leader runs, unless `params.restart = false`."""
        change = self._begin(fault)
        self._postgres(change.old)  # running, or the fault has nothing to kill
        patroni.kill_member(self.stack.children[change.old])
        if not fault.params.get("restart", True):
            return lambda: None

        def undo() -> None:
            self._await(change)
            if not self.stop.is_set():  # an interrupted run stops it anyway
                self.stack.restart(change.old)
                self._whole()

        return undo

    def pause(self, fault: FaultLike) -> Callable[[], None]:
        """SIGSTOP the leader's Patroni and PostgreSQL together: it neither renews its lock
        nor answers (a partition from everything). Resumed once a new leader runs."""
        change = self._begin(fault)
        patroni_group = self.stack.children[change.old].pid
        postgres = self._postgres(change.old)  # before anything stops: it may find none
        os.killpg(patroni_group, signal.SIGSTOP)
        _signal(postgres, signal.SIGSTOP)  # the postmaster first: it forks no more
        postgres += [pid for pid in self._postgres(change.old) if pid not in postgres]
        _signal(postgres, signal.SIGSTOP)  # and any child it forked meanwhile

        def undo() -> None:
            self._await(change)
            _signal(postgres, signal.SIGCONT)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(patroni_group, signal.SIGCONT)
            self._whole()

        return undo

    def switchover(self, fault: FaultLike) -> Callable[[], None]:
        """A planned switchover with the real `patronictl`, to `params.candidate` or to the
        synchronous standby; returns once patronictl has (a new leader runs)."""
        change = self._begin(fault)
        candidate = str(fault.params.get("candidate") or self._standby(change.old))
        patronictl(self.patronictl_config(), "switchover", patroni.SCOPE,
                   "--leader", change.old, "--candidate", candidate, "--force")  # fmt: skip
        return self._whole

    # --- the leader change ----------------------------------------------------------------
    def _begin(self, fault: FaultLike) -> LeaderChange:
        old = patroni.leader(self.api_urls)
        if old is None:
            raise RuntimeError("the Patroni cluster has no running leader")
        change = LeaderChange(fault.name, old)
        self.changes.append(change)
        threading.Thread(target=self._watch, args=(change,), name=f"watch {fault.name}",
                         daemon=True).start()  # fmt: skip
        return change

    def _watch(self, change: LeaderChange) -> None:
        deadline = time.monotonic() + NEW_LEADER_TIMEOUT
        # The old leader's API last: frozen, it would make every look wait its timeout.
        old_url = self.stack.services[change.old]["api_url"]
        urls = sorted(self.api_urls, key=lambda url: url == old_url)
        while time.monotonic() < deadline and not self.stop.is_set():
            new = patroni.leader(urls)
            if new is not None and new != change.old:
                change.new, change.at = new, time.time()
                break
            time.sleep(POLL)
        change.seen.set()

    def _await(self, change: LeaderChange) -> None:
        """Until a new leader runs (bounded); no wait once the run is being stopped."""
        deadline = time.monotonic() + NEW_LEADER_TIMEOUT
        while not change.seen.wait(0.2):
            if self.stop.is_set() or time.monotonic() > deadline:
                return

    def _whole(self) -> None:
        """Until every member is back and streaming from the leader (bounded): a fault on the
        leader lasts, in the report, until the cluster is whole again."""
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while not self.stop.is_set() and time.monotonic() < deadline:
            if _settled(patroni.roles(self.api_urls), self.stack.ha_members):
                return
            time.sleep(0.2)

    def _postgres(self, name: str) -> list[int]:
        """A member's postmaster, then its children (see `patroni.postgres_processes`)."""
        pids = patroni.postgres_processes(Path(str(self.stack.services[name]["data_dir"])))
        if not pids:
            raise RuntimeError(f"{name}: no PostgreSQL running")
        return pids

    def _standby(self, old: str) -> str:
        members = patroni.roles(self.api_urls)
        ranked = sorted((n for n in members if n != old),
                        key=lambda n: members[n].get("role") != "sync_standby")  # fmt: skip
        if not ranked:
            raise RuntimeError(f"no member to switch over to from {old}")
        return ranked[0]

    def patronictl_config(self) -> Path:
        """A patronictl configuration in the stack's run directory: the cluster's etcd."""
        path = self.stack.run_dir / "patronictl.json"
        if not path.exists():
            etcd = str(self.stack.services["etcd"]["url"]).removeprefix("http://")
            config = {"scope": patroni.SCOPE, "etcd3": {"hosts": [etcd], "protocol": "http"}}
            path.write_text(json.dumps(config))
        return path


def _signal(pids: Sequence[int], signum: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def patronictl(config: Path, *args: str, timeout: float = 60.0) -> str:
    """Run the installed `patronictl` (beside this interpreter) with `config`; its output."""
    binary = Path(sys.executable).with_name("patronictl")
    argv = [str(binary) if binary.exists() else "patronictl", "-c", str(config), *args]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[2:])} failed ({result.returncode}): "
                           f"{(result.stderr or result.stdout).strip()[-500:]}")  # fmt: skip
    return result.stdout


# --- after the run ------------------------------------------------------------------------
def settle(api_urls: Sequence[str], members: int, timeout: float = SETTLE_TIMEOUT) -> bool:
    """Wait until one leader runs and every other member streams from it; whether it did."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _settled(patroni.roles(api_urls), members):
            return True
        time.sleep(0.5)
    return False


def _settled(listed: dict[str, dict[str, Any]], members: int) -> bool:
    leaders = [m for m in listed.values() if m.get("role") == "leader"
               and m.get("state") == "running"]  # fmt: skip
    streaming = [m for m in listed.values() if m.get("role") in patroni.REPLICA_ROLES
                 and m.get("state") == "streaming"]  # fmt: skip
    return len(leaders) == 1 and len(streaming) == members - 1


def members_verdict(
    api_urls: Sequence[str], members: int, changes: Sequence[LeaderChange]
) -> dict[str, Any]:
    """The invariant `patroni_members`: every member back, one leader, the others streaming
    replicas (a killed or frozen leader rejoined, rewound); the detail names each change."""
    listed = patroni.roles(api_urls)
    back = sum(1 for m in listed.values() if m.get("state") in ("running", "streaming"))
    states = ", ".join(f"{name} {m.get('role')} ({m.get('state')})"
                       for name, m in sorted(listed.items()))  # fmt: skip
    moves = "; ".join(f"{c.fault}: {c.old} -> {c.new or 'no new leader'}" for c in changes)
    detail = (states or "no member answered") + (f"; {moves}" if moves else "")
    return {"name": "patroni_members", "measured": f"{back} of {members} back",
            "limit": "all back, one leader", "passed": _settled(listed, members),
            "detail": detail}  # fmt: skip
