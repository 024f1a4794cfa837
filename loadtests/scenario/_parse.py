"""The file's tables read into the model, each key checked; cross references checked too."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from devstack.stack.postgres import SYNCHRONOUS_COMMIT_LEVELS
from devstack.upstream.behaviour import Mode
from loadtests.scenario._model import (
    ALL,
    BALANCED_KINDS,
    BROKERS,
    DEFAULT_MIX,
    ENDPOINTS,
    FAULT_KINDS,
    GROUPS,
    KIND_TARGETS,
    LEADER,
    TARGETS,
    TOXIC_TYPES,
    ErrorSlo,
    Fault,
    FirstWriteSlo,
    Invariants,
    LatencySlo,
    Load,
    RecoverySlo,
    Scenario,
    Slo,
    Stage,
    System,
)
from loadtests.scenario._toml import Table, show

_TOP_KEYS = ("name", "description", "min_scale", "load", "system", "faults", "slo", "invariants")

_SLO_ENDPOINTS = (ALL, *ENDPOINTS, *GROUPS)

_Read = Callable[[Table, str], Any]
_RESTART: _Read = Table.boolean  # false: leave it down (the injector restarts it by default)
_PARAMS: Mapping[str, Mapping[str, _Read]] = {
    "kill": {
        "processes": lambda table, key: table.choice(key, ("children",), what="processes"),
        "restart": _RESTART,
    },
    "stop": {"restart": _RESTART},
    "switchover": {"candidate": Table.string},
    "kill_instance": {"instance": lambda table, key: table.integer(key, minimum=1)},
    "rolling_restart": {"settle": Table.number},
    "terminate_backends": {
        "count": lambda table, key: table.integer(key, minimum=1),
        "every": lambda table, key: table.number(key, positive=True),
    },
    "upstream_mode": {
        "mode": lambda table, key: table.choice(key, tuple(Mode), what="upstream mode"),
        "delay_ms": lambda table, key: table.integer(key, minimum=0),
        "status": lambda table, key: table.integer(key, minimum=0),
        "jitter_ms": lambda table, key: table.integer(key, minimum=0),
        "tail_ms": lambda table, key: table.integer(key, minimum=0),
        "tail_every": lambda table, key: table.integer(key, minimum=1),
    },
}


def parse(path: Path, data: dict[str, Any]) -> Scenario:
    root = Table(path.name, "", data)
    root.check_keys(_TOP_KEYS)
    name = root.string("name", default=path.stem)
    description = root.string("description")
    if "\n" in description.strip():
        raise root.error("description", "must be one line (it titles the report)")
    load = _load(root.table("load"))
    system = _system(root.table("system", default={}))
    faults = _faults(root.tables("faults"), load.duration)
    _check_instances(root, system, faults)
    if system.ha != "patroni" and any(fault.target == LEADER for fault in faults):
        raise root.error("system", 'a fault on "leader" needs ha = "patroni" (a Patroni stack)')
    slos = tuple(slo for table in root.tables("slo") for slo in _slos(table, faults))
    invariants = _invariants(root.table("invariants", default={}))
    min_scale = root.number("min_scale", default=0.0)
    return Scenario(name, description, path, load, system, faults, slos, invariants,
                    min_scale=min_scale, source=data)  # fmt: skip


def _load(table: Table) -> Load:
    table.check_keys(
        ("users", "spawn_rate", "start_rate", "stages", "mix", "request_timeout", "seed")
    )
    stages = table.tables("stages")
    if not stages:
        raise table.error("stages", "must have at least one stage")
    return Load(
        users=table.integer("users", minimum=1),
        start_rate=table.number("start_rate", default=0.0),
        stages=tuple(_stage(stage) for stage in stages),
        mix=_mix(table),
        request_timeout=table.number("request_timeout", default=10.0, positive=True),
        spawn_rate=table.number("spawn_rate", default=None, positive=True),
        seed=table.integer("seed", default=None, minimum=0),
    )


def _stage(table: Table) -> Stage:
    table.check_keys(("duration", "rate"))
    return Stage(table.number("duration", positive=True), table.number("rate"))


def _mix(load: Table) -> Mapping[str, float]:
    if "mix" not in load.data:
        return dict(DEFAULT_MIX)
    table = load.table("mix")
    table.check_keys(ENDPOINTS)
    mix = {endpoint: table.number(endpoint) for endpoint in ENDPOINTS if endpoint in table.data}
    if sum(mix.values()) <= 0:
        raise load.error("mix", f"weights must have a positive sum, got {show(table.data)}")
    return mix


def _system(table: Table) -> System:
    table.check_keys(("web_workers", "instances", "env", "broker", "synchronous_commit", "ha"))
    env_table = table.table("env", default={})
    env = {key: env_table.string(key) for key in env_table.data}
    return System(
        web_workers=table.integer("web_workers", default=2, minimum=1),
        instances=table.integer("instances", default=1, minimum=1),
        env=env,
        broker=table.choice("broker", BROKERS, what="broker", default="redis"),
        synchronous_commit=table.choice(
            "synchronous_commit", SYNCHRONOUS_COMMIT_LEVELS, what="level", default="local"
        ),
        ha=table.choice("ha", ("none", "patroni"), what="mode", default="none"),
    )


def _check_instances(root: Table, system: System, faults: tuple[Fault, ...]) -> None:
    """Faults on instances behind the balancer need them, and name one that exists."""
    for index, fault in enumerate(faults):
        if fault.kind in BALANCED_KINDS and system.instances < 2:
            problem = f'kind "{fault.kind}" needs system.instances >= 2 (HAProxy in front)'
            raise root.error(f"faults[{index}].kind", problem)
        if fault.params.get("instance", 1) > system.instances:
            problem = f"there are {system.instances} instances, not {fault.params['instance']}"
            raise root.error(f"faults[{index}].params.instance", problem)


def _faults(tables: list[Table], run_duration: float) -> tuple[Fault, ...]:
    faults: list[Fault] = []
    for table in tables:
        fault = _fault(table, run_duration)
        if any(other.name == fault.name for other in faults):
            raise table.error("name", f"{show(fault.name)} names two faults (names must differ)")
        faults.append(fault)
    return tuple(faults)


def _fault(table: Table, run_duration: float) -> Fault:
    table.check_keys(("name", "kind", "target", "start", "duration", "params"))
    kind = table.choice("kind", FAULT_KINDS, what="fault kind")
    target = table.choice("target", TARGETS, what="target")
    if target not in KIND_TARGETS[kind]:
        allowed = ", ".join(KIND_TARGETS[kind])
        raise table.error("target", f'kind "{kind}" cannot target "{target}" (one of: {allowed})')
    start = table.number("start")
    if start >= run_duration:
        raise table.error("start", f"{start:g} s is not inside the run (0 to {run_duration:g} s)")
    duration = table.number("duration", default=None)  # 0: a one-off action (promote)
    if duration is not None and start + duration > run_duration + 1e-9:
        raise table.error(
            "duration",
            f"the fault ends at {start + duration:g} s, after the run ends ({run_duration:g} s)",
        )
    name = table.string("name", default=f"{kind} {target}")
    params = _params(table, kind)
    return Fault(name, kind, target, start, duration, params)


def _params(fault: Table, kind: str) -> dict[str, Any]:
    """Kind-specific settings; only the keys the injector reads, each checked."""
    table = fault.table("params", default={})
    if kind == "toxic":
        return _toxic_params(table)
    readers = _PARAMS.get(kind, {})
    table.check_keys(readers)
    if kind == "upstream_mode":
        table.get("mode")  # required: the mode is the fault
    return {key: read(table, key) for key, read in readers.items() if key in table.data}


def _toxic_params(table: Table) -> dict[str, Any]:
    table.check_keys(("type", "stream", "toxicity", "attributes"))
    attributes = table.table("attributes", default={})
    return {
        "type": table.choice("type", TOXIC_TYPES, what="toxic type"),
        "stream": table.choice("stream", ("downstream", "upstream"), default="downstream"),
        "toxicity": table.number("toxicity", default=1.0, maximum=1.0),
        "attributes": {key: attributes.integer(key, minimum=0) for key in attributes.data},
    }


def _slos(table: Table, faults: tuple[Fault, ...]) -> list[Slo]:
    """One [[slo]] table: a recovery bound, or an error rate and / or a p99 bound."""
    kind = table.choice("kind", ("recovery", "first_write"), what="slo kind", default=None)
    if kind == "recovery":
        return [_recovery(table, faults)]
    if kind == "first_write":
        return [_first_write(table, faults)]
    table.check_keys(
        ("kind", "endpoint", "phase", "max_error_rate", "error_statuses", "p99", "p99_statuses")
    )
    endpoint = table.choice("endpoint", _SLO_ENDPOINTS, what="endpoint", default="*")
    phase = _phase(table, faults)
    max_error_rate = table.number("max_error_rate", default=None, maximum=1.0)
    p99 = table.number("p99", default=None, positive=True)
    statuses = _statuses(table)
    if max_error_rate is None and p99 is None:
        raise table.error("max_error_rate", "is required (or p99, or both)")
    slos: list[Slo] = []
    if max_error_rate is not None:
        slos.append(ErrorSlo(endpoint, phase, max_error_rate, statuses))
    if p99 is not None:
        slos.append(LatencySlo(endpoint, phase, p99, _statuses(table, "p99_statuses")))
    return slos


def _recovery(table: Table, faults: tuple[Fault, ...]) -> RecoverySlo:
    table.check_keys(
        ("kind", "fault", "endpoint", "max_error_rate", "max_seconds", "window", "error_statuses")
    )
    fault = _ending_fault(table, "fault", table.string("fault"), faults)
    return RecoverySlo(
        fault=fault,
        endpoint=table.choice("endpoint", _SLO_ENDPOINTS, what="endpoint", default="*"),
        max_error_rate=table.number("max_error_rate", default=0.0, maximum=1.0),
        max_seconds=table.number("max_seconds"),
        window=table.number("window", default=3.0, positive=True),
        error_statuses=_statuses(table),
    )


def _first_write(table: Table, faults: tuple[Fault, ...]) -> FirstWriteSlo:
    table.check_keys(("kind", "fault", "endpoint", "max_seconds"))
    name = table.string("fault")
    if all(fault.name != name for fault in faults):
        raise table.error("fault", _no_fault(name, faults))
    return FirstWriteSlo(
        fault=name,
        max_seconds=table.number("max_seconds", positive=True),
        endpoint=table.choice(
            "endpoint", ("order_create", "report_create"), what="write", default="order_create"
        ),
    )


def _phase(table: Table, faults: tuple[Fault, ...]) -> str:
    phase = table.string("phase", default="all")
    if phase in ("all", "before"):
        return phase
    where, _, name = phase.partition(":")
    if where not in ("during", "after") or not name:
        problem = 'must be "all", "before", "during:<fault name>" or "after:<fault name>"'
        raise table.error("phase", f"{problem}, got {show(phase)}")
    if where == "after":
        _ending_fault(table, "phase", name, faults)
    elif all(fault.name != name for fault in faults):
        raise table.error("phase", _no_fault(name, faults))
    return phase


def _ending_fault(table: Table, key: str, name: str, faults: tuple[Fault, ...]) -> str:
    """A fault with an end inside the run: the only kind that has an "after"."""
    fault = next((fault for fault in faults if fault.name == name), None)
    if fault is None:
        raise table.error(key, _no_fault(name, faults))
    if fault.duration is None:
        raise table.error(key, f"fault {show(name)} lasts to the end of the run: no after")
    return name


def _no_fault(name: str, faults: tuple[Fault, ...]) -> str:
    known = ", ".join(show(fault.name) for fault in faults) or "none"
    return f"no fault named {show(name)} (faults: {known})"


def _statuses(table: Table, key: str = "error_statuses") -> tuple[int, ...] | None:
    values = table.get(key, default=None)
    if values is None:
        return None
    if not isinstance(values, list) or not values:
        raise table.error(key, f"must be a list of statuses, got {show(values)}")
    for index, value in enumerate(values):
        if type(value) is not int or not 0 <= value <= 599:
            problem = f"must be an HTTP status (0 to 599), got {show(value)}"
            raise table.error(f"{key}[{index}]", problem)
    return tuple(values)


def _invariants(table: Table) -> Invariants:
    names = ("orders_lost", "orders_phantom", "reports_lost")
    table.check_keys((*names, "max_extra_upstream_calls"))
    extra = table.number("max_extra_upstream_calls", default=None)
    if extra is not None and extra < 0:
        raise table.error("max_extra_upstream_calls", f"must be a number >= 0, got {show(extra)}")
    return Invariants(**{name: table.integer(name, default=0, minimum=0) for name in names},
                      max_extra_upstream_calls=extra)  # fmt: skip
