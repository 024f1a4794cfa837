"""A Patroni-managed PostgreSQL cluster for the stack (`STACK_HA=patroni`): one etcd and two
or three members, each a Patroni daemon with its own REST API port and PostgreSQL port.

Patroni (PyPI, >= 3.2) runs as the `postgres` OS user under root, as PostgreSQL itself, so
it can run initdb and pg_ctl; the interpreter it runs on must be one that user can execute
(see `interpreter`). Patroni starts PostgreSQL in a session of its own, out of reach of a
group kill: stopping a member kills Patroni and shuts its PostgreSQL down (`MemberChild`).

Timings, for fast failover on one machine: `ttl` 20 s is Patroni's floor (it raises
anything lower); `loop_wait` 1 s makes a switchover and a failed leader's replacement
visible within about a second once the lock is free; `retry_timeout` 5 s rides out short
etcd or PostgreSQL stalls and keeps Patroni's rule `loop_wait + 2 * retry_timeout <= ttl`.
`synchronous_mode` is on, not strict: see docs/patroni.md for the trade-off.

Hooks for scenarios: `leader(api_urls)`, `switchover(...)`, `kill_member(child)`.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import signal
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx

from devstack.stack import etcd, postgres
from devstack.stack.child import Child, kill_group, tail
from devstack.stack.ports import free_port
from devstack.stack.state import StateDir, proc_stat, start_ticks
from devstack.stack.waits import StackError, postgres_accepts, wait_until


class Stack(Protocol):
    """What the members need of `devstack.stack.stack.Stack` (which imports this module)."""

    run_dir: Path
    env: dict[str, str]
    services: dict[str, dict[str, Any]]
    children: dict[str, Child]
    _ready_checks: dict[str, Callable[[], None]]

    def add(self, name: str, child: Child, **info: Any) -> None: ...

    def log_path(self, name: str) -> Path: ...


HOST = "127.0.0.1"
TTL, LOOP_WAIT, RETRY_TIMEOUT = 20, 1, 5
SCOPE = "stack"
REPLICA_ROLES = frozenset({"replica", "sync_standby", "quorum_standby"})
START_TIMEOUT = 60.0

# Global settings, kept in etcd by the first member (bootstrap.dcs); the same throw-away
# choices as the plain stack's primary (devstack/stack/postgres.py).
_PARAMETERS = {
    "wal_level": "replica",
    "max_wal_senders": 10,
    "max_replication_slots": 10,
    "hot_standby": "on",
    "hot_standby_feedback": "on",
    "fsync": "off",
    "max_connections": 200,
    "wal_receiver_status_interval": "1s",
    "wal_keep_size": "128MB",
    "log_min_messages": "warning",
    "log_line_prefix": "%m [%p] ",
}


@dataclass
class Member:
    """One Patroni member: its name, ports and home (config and data, owned by postgres)."""

    name: str
    pg_port: int
    api_port: int
    home: Path

    @property
    def api_url(self) -> str:
        return f"http://{HOST}:{self.api_port}"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def config_path(self) -> Path:
        return self.home / "patroni.json"

    def config(self, *, etcd_url: str, bindir: Path, sockets: Path) -> dict[str, Any]:
        """Patroni's configuration for this member (JSON, which Patroni reads as YAML)."""
        trust = ["local all all trust", "host all all 127.0.0.1/32 trust",
                 "host replication all 127.0.0.1/32 trust"]  # fmt: skip
        return {
            "scope": SCOPE,
            "name": self.name,
            "restapi": {
                "listen": f"{HOST}:{self.api_port}",
                "connect_address": f"{HOST}:{self.api_port}",
            },
            "etcd3": {"hosts": [etcd_url.removeprefix("http://")], "protocol": "http"},
            "bootstrap": {
                "dcs": {
                    "ttl": TTL,
                    "loop_wait": LOOP_WAIT,
                    "retry_timeout": RETRY_TIMEOUT,
                    "maximum_lag_on_failover": 16 * 1024 * 1024,
                    "synchronous_mode": True,
                    "synchronous_mode_strict": False,
                    "postgresql": {
                        "use_pg_rewind": True,
                        "use_slots": True,
                        "remove_data_directory_on_rewind_failure": True,
                        "remove_data_directory_on_diverged_timelines": True,
                        "parameters": _PARAMETERS,
                    },
                },
                "initdb": [{"encoding": "UTF8"}, {"locale": "C"}, "no-sync"],
            },
            "postgresql": {
                "listen": f"{HOST}:{self.pg_port}",
                "connect_address": f"{HOST}:{self.pg_port}",
                "data_dir": str(self.data_dir),
                "bin_dir": str(bindir),
                "pgpass": str(self.home / "pgpass"),
                "authentication": {
                    "superuser": {"username": "postgres"},
                    "replication": {"username": "postgres"},
                },
                "parameters": {"unix_socket_directories": str(sockets)},
                # A replica's clone asks for a checkpoint: spread (the default), it took
                # 15 s here, and under load past the stack's start timeout.
                "basebackup": [{"checkpoint": "fast"}],
                "pg_hba": trust,
            },
            "log": {"level": "WARNING"},
        }


@dataclass
class MemberChild(Child):
    """A Patroni daemon and the PostgreSQL it runs (in a session of its own, out of reach of
    a group kill). Stopped fast: the data is thrown away, so Patroni is killed (a graceful
    stop waits on the other members and on the lock's hand-over: seconds) and PostgreSQL
    shut down in immediate mode, then killed if it lingers."""

    data_dir: Path = field(default_factory=Path)
    _postmaster: int | None = field(default=None, repr=False)

    def begin_stop(self) -> None:
        self._postmaster = postmaster_pid(self.data_dir)
        if self.alive():
            kill_group(self.pid)
        if self._postmaster is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._postmaster, signal.SIGQUIT)

    def finish_stop(self, deadline: float) -> None:
        super().finish_stop(deadline)
        pid, self._postmaster = self._postmaster, None
        while pid is not None and time.monotonic() < deadline:
            if start_ticks(pid, living=True) is None:
                return
            time.sleep(0.02)
        kill_postmaster(self.data_dir)


@dataclass
class EtcdChild(Child):
    """etcd, stopped last: `Stack.stop` signals every child at once, and a member whose
    etcd is gone spends its retry_timeout trying to hand back the leader lock."""

    def begin_stop(self) -> None:
        """Nothing yet: members stop first (their `finish_stop` comes before this one's)."""

    def finish_stop(self, deadline: float) -> None:
        super().begin_stop()
        super().finish_stop(max(deadline, time.monotonic() + 1.0))


def start(stack: Stack, *, members: int, bindir: Path, user: str | None) -> None:
    """etcd, then every member at once; return when a leader and streaming replicas are up.

    Fills `stack.env` (DATABASE_URL over every member, read-write; DATABASE_REPLICA_URLS;
    DATABASE_PATRONI_URLS) and records `etcd` and each member (`pg-0`...) in the stack.
    """
    argv, env = interpreter(user)
    etcd_url = _start_etcd(stack)
    sockets = postgres.own_dir(stack.run_dir / "sockets", user)
    cluster: list[Member] = []
    for index in range(members):
        home = postgres.own_dir(stack.run_dir / f"pg-{index}", user)
        member = Member(f"pg-{index}", free_port(), free_port(), home)
        config = member.config(etcd_url=etcd_url, bindir=bindir, sockets=sockets)
        _write_owned(member.config_path, json.dumps(config, indent=1), user)
        child = MemberChild(member.name, [*argv, str(member.config_path)],
                            stack.log_path(member.name), env=env, cwd=Path("/"), user=user,
                            data_dir=member.data_dir)  # fmt: skip
        try:
            child.start()
        except OSError as exc:
            raise StackError(f"could not start Patroni for {member.name}: {exc}") from exc
        stack.add(member.name, child, port=member.pg_port, api_port=member.api_port,
                  api_url=member.api_url, data_dir=str(member.data_dir),
                  url=postgres.url(member.pg_port), sockets=str(sockets), role=None)  # fmt: skip
        stack._ready_checks[member.name] = _ready_check(child, member)
        cluster.append(member)
    api_urls = [member.api_url for member in cluster]
    children = [stack.children[member.name] for member in cluster]
    # The database is made as soon as a leader runs, while the replicas clone and stream.
    wait_until(children[0], lambda: _all_alive(children) and leader(api_urls) is not None,
               what="a Patroni leader", timeout=START_TIMEOUT)  # fmt: skip
    leader_port = next(m.pg_port for m in cluster if m.name == leader(api_urls))
    postgres.create_database(leader_port)
    wait_until(children[0], lambda: _all_alive(children) and _ready(api_urls, members),
               what=f"a Patroni leader and {members - 1} streaming replica(s)",
               timeout=START_TIMEOUT)  # fmt: skip
    for member, running in zip(cluster, children, strict=True):  # replayed everywhere
        wait_until(running, postgres_accepts(postgres.url(member.pg_port)), what=member.name)
    ports = [member.pg_port for member in cluster]
    stack.env["DATABASE_URL"] = postgres.url(*ports, read_write=True)
    stack.env["DATABASE_REPLICA_URLS"] = ",".join(postgres.url(port) for port in ports)
    stack.env["DATABASE_PATRONI_URLS"] = ",".join(api_urls)
    record_roles(stack.services)  # now: the fault proxy fronts `primary` and `replica`


def _start_etcd(stack: Stack) -> str:
    binary = etcd.find_binary(os.environ.get("ETCD_BIN"))
    client_port, peer_port = free_port(), free_port()
    data_dir = stack.run_dir / "etcd"
    data_dir.mkdir(mode=0o700)
    log_path = stack.log_path("etcd")
    child = etcd.server(binary, client_port=client_port, peer_port=peer_port,
                        data_dir=data_dir, log_path=log_path, child_class=EtcdChild)  # fmt: skip
    try:
        child.start()
    except OSError as exc:
        raise StackError(f"could not start etcd ({binary}): {exc}") from exc
    url = etcd.url(client_port)
    stack.add("etcd", child, port=client_port, peer_port=peer_port, data_dir=str(data_dir),
              url=url)  # fmt: skip
    stack._ready_checks["etcd"] = lambda: wait_until(child, etcd.healthy(url), what=url)
    stack._ready_checks["etcd"]()
    return url


def _ready_check(child: Child, member: Member) -> Callable[[], None]:
    """After a restart: the member's REST API answers and PostgreSQL accepts connections."""
    url = postgres.url(member.pg_port, database="postgres")

    def check() -> None:
        wait_until(child, lambda: _member_running(member.api_url), what=member.api_url,
                   timeout=START_TIMEOUT)  # fmt: skip
        wait_until(child, postgres_accepts(url), what=url)

    return check


def _all_alive(children: Iterable[Child]) -> bool:
    dead = [child for child in children if not child.alive()]
    if dead:
        raise StackError(f"{dead[0].name} exited with {dead[0].returncode()}: "
                         f"{tail(dead[0].log_path)}")  # fmt: skip
    return True


# --- Patroni's REST API -------------------------------------------------------------------
def cluster_view(api_urls: Sequence[str], timeout: float = 1.0) -> dict[str, Any] | None:
    """`GET /cluster` from the first member that answers (any member serves the whole view)."""
    for url in api_urls:
        try:
            response = httpx.get(f"{url}/cluster", timeout=timeout)
        except httpx.HTTPError:
            continue
        if response.status_code == 200:
            return dict(response.json())
    return None


def roles(api_urls: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Member name -> its entry in `/cluster` (role, state, host, port, lag...)."""
    view = cluster_view(api_urls) or {}
    return {member["name"]: member for member in view.get("members", [])}


def leader(api_urls: Sequence[str]) -> str | None:
    """The name of the member holding the leader lock and running, if any."""
    for name, member in roles(api_urls).items():
        if member.get("role") == "leader" and member.get("state") == "running":
            return name
    return None


def _ready(api_urls: Sequence[str], members: int) -> bool:
    """A running leader, and every other member streaming (the synchronous one chosen)."""
    listed = roles(api_urls).values()
    leaders = [m for m in listed if m.get("role") == "leader" and m.get("state") == "running"]
    streaming = [m for m in listed if m.get("role") in REPLICA_ROLES
                 and m.get("state") == "streaming"]  # fmt: skip
    synchronous = any(m.get("role") == "sync_standby" for m in streaming)
    return len(leaders) == 1 and len(streaming) == members - 1 and synchronous


def _member_running(api_url: str) -> bool:
    try:
        response = httpx.get(f"{api_url}/patroni", timeout=1)
    except httpx.HTTPError:
        return False
    return response.status_code == 200 and response.json().get("state") == "running"


def switchover(api_urls: Sequence[str], candidate: str | None = None,
               timeout: float = 30.0) -> str:  # fmt: skip
    """A planned switchover (`POST /switchover`) to `candidate` (else Patroni's choice);
    returns the new leader's name once it runs."""
    old = leader(api_urls)
    if old is None:
        raise StackError("switchover: the cluster has no running leader")
    body: dict[str, str] = {"leader": old}
    if candidate:
        body["candidate"] = candidate
    response = httpx.post(f"{api_urls[0]}/switchover", json=body, timeout=timeout)
    if response.status_code != 200:
        raise StackError(f"switchover from {old} refused ({response.status_code}): "
                         f"{response.text.strip()}")  # fmt: skip
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        new = leader(api_urls)
        if new is not None and new != old:
            return new
        time.sleep(0.1)
    raise StackError(f"switchover from {old}: no new leader within {timeout:.0f} s")


def kill_member(child: Child) -> None:
    """Kill a member as a crash would: Patroni and its PostgreSQL, SIGKILL, no clean-up
    (the lock then expires after `ttl`, and a replica takes over)."""
    if isinstance(child, MemberChild):
        postgres_pids = postgres_processes(child.data_dir)
        kill_group(child.pid)
        for pid in postgres_pids:  # each child of the postmaster runs in a session of its own
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def postgres_processes(data_dir: Path) -> list[int]:
    """A member's postmaster, then its children (backends, WAL sender...), none if it is not
    running: each child runs in a session of its own, so a signal to the postmaster's
    process group misses them."""
    pid = postmaster_pid(data_dir)
    if pid is None:
        return []
    children = []
    for entry in Path("/proc").iterdir():
        fields = proc_stat(int(entry.name)) if entry.name.isdigit() else None
        if fields is not None and fields[1] == str(pid) and fields[0] != "Z":
            children.append(int(entry.name))
    return [pid, *children]


# --- the state file -------------------------------------------------------------------
def record_roles(services: dict[str, dict[str, Any]]) -> None:
    """Set each member's `role` (`leader` or `replica`; None when Patroni lists it as
    neither), Patroni's own (`patroni_role`: leader, sync_standby, replica...) and `state`;
    point the `primary` and `replica` entries at the leader and a replica (the synchronous
    one first), so tools reading those keys reach servers of those roles as of this write."""
    members = {
        n: info for n, info in services.items() if "api_url" in info and "alias_of" not in info
    }
    if not members:  # not a Patroni stack: its primary and replica are no aliases
        return
    listed = roles([info["api_url"] for info in members.values()])
    for name, info in members.items():
        patroni_role = listed.get(name, {}).get("role")
        info["patroni_role"] = patroni_role
        info["role"] = "replica" if patroni_role in REPLICA_ROLES else None
        if patroni_role == "leader":
            info["role"] = "leader"
        info["state"] = listed.get(name, {}).get("state")
    for alias in ("primary", "replica"):
        if "alias_of" in services.get(alias, {}):
            services.pop(alias)
    by_role = sorted(members.items(), key=lambda item: _role_rank(item[1]["patroni_role"]))
    if by_role and by_role[0][1]["role"] == "leader":
        services["primary"] = {**by_role[0][1], "alias_of": by_role[0][0]}
    replicas = [item for item in by_role if item[1]["role"] == "replica"]
    if replicas:
        services["replica"] = {**replicas[0][1], "alias_of": replicas[0][0]}


def refresh_state(state_dir: StateDir) -> dict[str, Any] | None:
    """Read each member's role again into a running stack's `state.json` (for a process
    other than the one that started the stack, after a switchover or a failover)."""
    state = state_dir.read()
    if state is None:
        return None
    record_roles(state["services"])
    tmp = state_dir.state_file.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    tmp.replace(state_dir.state_file)
    return state


def _role_rank(role: str | None) -> int:
    return {"leader": 0, "sync_standby": 1, "quorum_standby": 2, "replica": 3}.get(role or "", 9)


# --- processes ------------------------------------------------------------------------
def interpreter(user: str | None) -> tuple[list[str], dict[str, str]]:
    """How to run `python -m patroni` as `user`: this interpreter if that user can run it
    with Patroni importable; else the system's python of the same version with this
    environment's site-packages on PYTHONPATH (a pyenv under /root is out of its reach)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PATRONI_")}
    own = [sys.executable, "-m", "patroni"]
    if user is None or _imports_patroni(sys.executable, user, env):
        return own, env
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    system = f"/usr/bin/python{version}"
    paths = {sysconfig.get_paths()[key] for key in ("purelib", "platlib")}
    fallback = {**env, "PYTHONPATH": os.pathsep.join(sorted(paths))}
    if Path(system).is_file() and _imports_patroni(system, user, fallback):
        return [system, "-s", "-m", "patroni"], fallback
    raise StackError(
        f"the {user} OS user cannot run Patroni: neither {sys.executable} nor {system} "
        "imports it (pip install 'patroni[etcd3]'; the interpreter and site-packages "
        f"must be readable by {user})"
    )


def _imports_patroni(python: str, user: str, env: dict[str, str]) -> bool:
    try:
        result = subprocess.run([python, "-s", "-c", "import patroni, psycopg"], env=env,
                                user=user, group=user, extra_groups=[], cwd="/",
                                capture_output=True, check=False, timeout=30)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def _write_owned(path: Path, text: str, user: str | None) -> None:
    path.write_text(text)
    if user:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def postmaster_pid(data_dir: Path) -> int | None:
    """The postmaster of `data_dir`, checked against its command line (a pid file may be stale)."""
    try:
        pid = int((data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    return pid if str(data_dir).encode() in argv else None


def kill_postmaster(data_dir: Path) -> None:
    """SIGKILL a postmaster still running on `data_dir`; its backends exit with it."""
    pid = postmaster_pid(data_dir)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
