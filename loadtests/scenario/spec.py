"""Scenario files: TOML read into frozen dataclasses, every key checked before a run starts.

A typo in a scenario must fail loudly, never change silently what a run proves, so unknown keys
are refused with a suggestion, and cross references (SLO phases naming faults, faults inside the
run, targets a fault kind can act on) are checked here. Every error names the file, the key path
and the problem: ``baseline.toml: load.stages[1].rate: must be a number >= 0, got "fast"``.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import replace
from pathlib import Path

from loadtests.scenario._model import (
    ALL,
    DEFAULT_MIX,
    ENDPOINTS,
    FAULT_KINDS,
    GROUPS,
    KIND_TARGETS,
    TARGETS,
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
    is_error,
)
from loadtests.scenario._parse import parse
from loadtests.scenario._toml import SpecError, show

SHIPPED = Path(__file__).resolve().parent / "shipped"  # the scenarios `scenario list` shows

__all__ = [
    "ALL",
    "DEFAULT_MIX",
    "ENDPOINTS",
    "FAULT_KINDS",
    "GROUPS",
    "KIND_TARGETS",
    "SHIPPED",
    "TARGETS",
    "ErrorSlo",
    "Fault",
    "FirstWriteSlo",
    "Invariants",
    "LatencySlo",
    "Load",
    "RecoverySlo",
    "Scenario",
    "Slo",
    "SpecError",
    "Stage",
    "System",
    "is_error",
    "list_scenarios",
    "load_scenario",
    "locust_args",
    "resolve",
]


def load_scenario(path: Path, *, scale: float = 1.0) -> Scenario:
    """Read and validate a scenario file; durations and fault times are multiplied by `scale`.

    Raises:
        SpecError: the file is missing, not TOML, or any key is wrong (the message says which).
    """
    path = Path(path)
    if not (isinstance(scale, int | float) and math.isfinite(scale) and scale > 0):
        raise SpecError(path.name, "", f"scale must be a number > 0, got {show(scale)}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpecError(path.name, "", "no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(path.name, "", f"invalid TOML: {exc}") from None
    scenario = parse(path, data)
    if scale < scenario.min_scale:
        problem = f"--scale {scale:g} is below {scenario.min_scale:g}: the faults cannot play out"
        raise SpecError(path.name, "min_scale", problem)
    return _scaled(scenario, scale)


def _scaled(scenario: Scenario, scale: float) -> Scenario:
    """Multiply every duration and time by `scale`; rates and latency limits stay as they are."""
    if scale == 1:
        return scenario
    load = scenario.load
    stages = tuple(replace(stage, duration=stage.duration * scale) for stage in load.stages)
    faults = tuple(
        replace(
            fault,
            start=fault.start * scale,
            duration=None if fault.duration is None else fault.duration * scale,
        )
        for fault in scenario.faults
    )
    slos = tuple(
        replace(slo, max_seconds=slo.max_seconds * scale, window=slo.window * scale)
        if isinstance(slo, RecoverySlo)
        else slo
        for slo in scenario.slos
    )
    return replace(
        scenario,
        load=replace(load, stages=stages),
        faults=faults,
        slos=slos,
        scale=scale,
    )


def locust_args(load: Load) -> list[str]:
    """The load as arguments of loadtests/locustfile.py (the runner adds host and records).

    `-t` is the scheduled duration rounded up to a whole second.
    """
    stages = ",".join(f"{_num(stage.duration)}:{_num(stage.rate)}" for stage in load.stages)
    mix = ",".join(f"{endpoint}={_num(weight)}" for endpoint, weight in load.mix.items())
    args = [
        *("-u", str(load.users)),
        *("-r", _num(load.users if load.spawn_rate is None else load.spawn_rate)),
        *("-t", f"{math.ceil(load.duration - 1e-9)}s"),
        *("--start-rate", _num(load.start_rate)),
        *("--stages", stages),
        *("--mix", mix),
        *("--request-timeout", _num(load.request_timeout)),
    ]
    if load.seed is not None:
        args += ["--seed", str(load.seed)]
    return args


def _num(value: float) -> str:
    """A number without float noise: 2.5 -> "2.5", 10.0 -> "10"."""
    return f"{value:.6f}".rstrip("0").rstrip(".")


def list_scenarios(directory: Path) -> list[tuple[str, str]]:
    """(name, description) of every scenario file in `directory`; the name is the file stem."""
    found = []
    for path in sorted(Path(directory).glob("*.toml")):
        try:
            description = load_scenario(path).description
        except SpecError as exc:
            description = f"(invalid: {exc})"
        found.append((path.stem, description))
    return found


def resolve(name_or_path: str | Path, directory: Path) -> Path:
    """A scenario file from a path or a name in `directory`.

    Raises:
        SpecError: neither exists; the message lists the known names.
    """
    candidate = Path(name_or_path)
    if candidate.is_file():
        return candidate
    named = Path(directory) / f"{name_or_path}.toml"
    if named.is_file():
        return named
    known = ", ".join(name for name, _ in list_scenarios(directory)) or "none"
    raise SpecError(str(name_or_path), "", f"no such scenario file or name (known: {known})")
