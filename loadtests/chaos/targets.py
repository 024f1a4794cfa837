"""Where an experiment's targets are: the services a running stack recorded in `state.json`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from devstack.faults import FaultError
from devstack.stack.state import StateDir, default_state_dir, start_ticks


def state_dir(stack_dir: str | None) -> StateDir:
    """`stack_dir`, else `$STACK_DIR`, else `.stack` in the current directory (where `make run`
    writes when started in the checkout)."""
    return StateDir(Path(stack_dir) if stack_dir else default_state_dir())


def read_state(stack_dir: str | None) -> dict[str, Any]:
    states = state_dir(stack_dir)
    state = states.read()
    if state is None:
        raise FaultError(f"no running stack: {states.state_file} is missing (start `make run`)")
    return state


def service(name: str, stack_dir: str | None) -> dict[str, Any]:
    """What the stack recorded for service `name` (pid, host, port, url...)."""
    services = read_state(stack_dir).get("services", {})
    if name not in services:
        known = ", ".join(sorted(services)) or "none"
        raise FaultError(f"no service {name!r} in the stack's state.json (services: {known})")
    return dict(services[name])


def pid(name: str, stack_dir: str | None) -> int:
    """The pid of service `name`, checked against its recorded start time: a stale state.json
    must not make us signal whatever process has the pid now."""
    info = service(name, stack_dir)
    number = info.get("pid")
    if not isinstance(number, int):
        raise FaultError(f"{name}: no pid in the stack's state.json")
    if info.get("start_ticks") is not None and start_ticks(number) != info["start_ticks"]:
        raise FaultError(f"{name} (pid {number}): not running any more (state.json is stale)")
    return number


def database_url(name: str, stack_dir: str | None) -> str:
    url = service(name, stack_dir).get("url")
    if not isinstance(url, str):
        raise FaultError(f"{name}: no url in the stack's state.json")
    return url


def served_url(stack_dir: str | None) -> str:
    """The web server's URL: `serving` once it answered, else the web service's own."""
    state = read_state(stack_dir)
    url = state.get("serving") or state.get("services", {}).get("web", {}).get("url")
    if not isinstance(url, str):
        raise FaultError("the stack serves no web server (state.json has no `serving` url)")
    return url.rstrip("/")
