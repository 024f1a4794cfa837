"""The commands of `python -m devstack`: up, down, serve."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from devstack.stack import Stack, StackError, patroni
from devstack.stack.child import tail
from devstack.stack.logs import LogEcho
from devstack.stack.state import StateDir, default_state_dir, start_ticks
from devstack.stack.supervisor import serve

ROOT = Path(__file__).resolve().parents[1]
# STACK_DIR moves the state files (a second stack, tests of `serve` itself).
STATE_DIR = default_state_dir()


def say(message: str) -> None:
    print(f"{'stack':<9}| {message}", flush=True)


def stop_on_signals() -> threading.Event:
    """An event set by SIGINT or SIGTERM (the main thread then stops everything in order)."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    return stop


def make_stack() -> Stack:
    """The stack as the shell configures it: services named in the environment are used."""
    return Stack(
        state_dir=STATE_DIR,
        external=os.environ,
        pg_bin=os.environ.get("PG_BIN"),
        redis_server=os.environ.get("REDIS_SERVER"),
        synchronous_commit=os.environ.get("STACK_SYNCHRONOUS_COMMIT") or "local",
        broker=os.environ.get("STACK_BROKER") or "redis",
        # On unless turned off: faults by Toxiproxy's clients and `chaos run` need it.
        fault_proxy=os.environ.get("STACK_FAULT_PROXY", "on") != "off",
        # patroni: etcd and Patroni-managed members instead of a primary and a replica.
        ha=os.environ.get("STACK_HA") or "none",
        ha_members=int(os.environ.get("STACK_HA_MEMBERS") or 2),
    )


def up(*, quiet: bool) -> int:
    stop = stop_on_signals()
    stack = make_stack()
    env = stack.start()
    echo = None if quiet else LogEcho(stack.run_dir / "logs")
    try:
        print(STATE_DIR.joinpath("env").read_text(), end="", flush=True)
        say(f"running (state in {STATE_DIR}); Ctrl-C stops" if not quiet else "running")
        if echo:
            echo.start()
        stop.wait()
    finally:
        stack.stop()
        if echo:
            echo.stop()  # after the stack: its shutdown lines are echoed too
    return 0 if env else 1


def up_detached(timeout: float = 90.0) -> int:
    """Start `up --quiet` in its own session, wait for it to be ready, print its settings."""
    state = StateDir(STATE_DIR)
    if pid := state.running_supervisor():
        raise StackError(f"a stack is already running (pid {pid}): python -m devstack down")
    STATE_DIR.mkdir(exist_ok=True)
    log_path = STATE_DIR / "stack.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "devstack", "up", "--quiet"],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = state.read() or {}
        if current.get("ready") and current.get("supervisor", {}).get("pid") == process.pid:
            print(state.env_file.read_text(), end="")
            return 0
        if process.poll() is not None:
            raise StackError(f"the stack failed to start:\n{tail(log_path)}")
        time.sleep(0.1)
    process.terminate()
    raise StackError(f"the stack was not ready within {timeout:.0f} s; see {log_path}")


def down(timeout: float = 15.0) -> int:
    state = StateDir(STATE_DIR)
    pid = state.running_supervisor()
    if pid is None:
        for line in state.clean_stale() or ["no stack is running"]:
            say(line)
        return 0
    ticks = start_ticks(pid)

    def running() -> bool:  # a zombie (exited, not yet reaped) has stopped
        return start_ticks(pid, living=True) == ticks

    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and running():
        time.sleep(0.1)
    if running():
        os.kill(pid, signal.SIGKILL)
    state.clean_stale()  # what a supervisor killed, or dead without stopping, left behind
    say("stopped")
    return 0


def roles() -> int:
    """Refresh the running stack's Patroni roles in state.json (after a switchover...)."""
    state = patroni.refresh_state(StateDir(STATE_DIR))
    if state is None:
        say("no stack is running")
        return 1
    members = {name: info for name, info in state["services"].items()
               if "patroni_role" in info and "alias_of" not in info}  # fmt: skip
    if not members:
        say("the running stack has no Patroni members (STACK_HA=patroni)")
        return 1
    for name, info in sorted(members.items()):
        say(f"{name}: {info['patroni_role'] or '-'} ({info['state'] or 'not listed'}), "
            f"{info['url']}")  # fmt: skip
    return 0


def serve_all() -> int:
    stop = stop_on_signals()
    host = os.environ.get("WEB_HOST", "127.0.0.1")
    port = int(os.environ.get("WEB_PORT", "8000"))
    # STACK_INSTANCES=N (N >= 2): N web servers behind HAProxy on WEB_PORT, each of
    # WEB_CONCURRENCY processes (1 unless set: the instances share the machine's cores).
    text = os.environ.get("STACK_INSTANCES") or "1"
    if not text.isdigit() or int(text) < 1:
        raise StackError(f"STACK_INSTANCES must be a whole number >= 1, not {text!r}")
    instances = int(text)
    workers = int(os.environ.get("WEB_CONCURRENCY") or ("2" if instances == 1 else "1"))
    databases = ("etcd + Patroni members" if os.environ.get("STACK_HA") == "patroni"
                 else "PostgreSQL primary + replica")  # fmt: skip
    say(f"starting {databases}, Redis, the demo upstream")
    serve(make_stack(), stop, host=host, port=port, workers=workers, say=say, instances=instances)
    return 0
