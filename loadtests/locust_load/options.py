"""The locustfile's own command-line options, checked into one `LoadOptions`.

The parsed values stay plain strings and numbers: locust forwards them from the master to
its workers in every spawn message, and the web UI edits them as text. Bad values fail at
parse time on the command line (argparse names the option) and again, naming the option,
when a process builds its `LoadOptions` from what it received.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadtests.locust_load.mix import DEFAULT_MIX, Mix
from loadtests.locust_load.pacing import RateProfile, Stage, parse_stages

DEFAULT_USER_RATE = 1.0  # req/s per user, without stages
DEFAULT_REQUEST_TIMEOUT = 10.0  # s


class OptionError(ValueError):
    """An option's value is not usable; the message starts with the option's name."""


def add_arguments(parser: Any) -> None:
    """Add the options to locust's parser (an `init_command_line_parser` listener)."""
    group = parser.add_argument_group("loadtests", "the service's load (loadtests/locust_load/)")
    for flag, parse, default, text in _OPTIONS:
        group.add_argument(flag, type=_checked(parse), default=default, help=text)


def _checked(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse `type` that validates with `parse` but keeps what was typed (a string
    or number locust can forward to its workers)."""

    def check(text: str) -> Any:
        try:
            value = parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return value if isinstance(value, float | int) else text

    return check


@dataclass(frozen=True, slots=True)
class LoadOptions:
    """The load one locust process generates.

    Args:
        mix: endpoint weights.
        stages: the total rate's ramps after `start_rate`.
        start_rate: total req/s at the start; None (and no stages) means by hand.
        user_rate: req/s per user when there is no arrival rate.
        request_timeout: seconds per request.
        records_dir: where the records go; None writes none.
        seed: makes endpoint choices and payloads repeat.
    """

    mix: Mix
    stages: tuple[Stage, ...] = ()
    start_rate: float | None = None
    user_rate: float = DEFAULT_USER_RATE
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    records_dir: Path | None = None
    seed: int | None = None

    @property
    def paced(self) -> bool:
        """Whether the load is a total arrival rate shared by the users."""
        return bool(self.stages) or self.start_rate is not None

    def profile(self, users: int) -> RateProfile:
        """The total rate: the stages', or `users` times the per-user rate."""
        if self.paced:
            return RateProfile(start_rate=self.start_rate or 0.0, stages=self.stages)
        return RateProfile(start_rate=users * self.user_rate)

    @classmethod
    def from_namespace(cls, options: argparse.Namespace) -> LoadOptions:
        """Build from locust's parsed options (strings allowed: the web UI sends text)."""
        return cls(
            mix=_option(options, "mix", Mix.parse, DEFAULT_MIX),
            stages=_option(options, "stages", parse_stages, ""),
            start_rate=_option(options, "start_rate", _rate, None),
            user_rate=_option(options, "user_rate", _positive, DEFAULT_USER_RATE),
            request_timeout=_option(options, "request_timeout", _positive, DEFAULT_REQUEST_TIMEOUT),
            records_dir=_option(options, "records_dir", _path, None),
            seed=_option(options, "seed", _seed, None),
        )


def _option(
    options: argparse.Namespace, name: str, parse: Callable[[str], Any], default: Any
) -> Any:
    value = getattr(options, name, None)
    if value is None or value == "":
        return parse(default) if isinstance(default, str) else default
    try:
        return parse(str(value))
    except ValueError as exc:
        raise OptionError(f"--{name.replace('_', '-')}: {exc}") from None


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite number")
    return value


def _rate(text: str) -> float:
    value = _number(text)
    if value < 0:
        raise ValueError(f"a rate must be >= 0 req/s, not {text!r}")
    return value


def _positive(text: str) -> float:
    value = _number(text)
    if value <= 0:
        raise ValueError(f"must be above 0, not {text!r}")
    return value


def _seed(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"a seed must be an integer, not {text!r}") from None


def _path(text: str) -> Path:
    if not text.strip():
        raise ValueError("the directory must not be blank")
    return Path(text)


_OPTIONS: tuple[tuple[str, Callable[[str], Any], Any, str], ...] = (
    ("--records-dir", _path, None,
     "write one JSON line per request to DIR/<host>-<pid>.jsonl (off when not given)"),
    ("--mix", Mix.parse, DEFAULT_MIX, f"endpoint weights (default {DEFAULT_MIX})"),
    ("--start-rate", _rate, None,
     "total arrival rate (req/s) at the start; with --stages, paces the whole test"),
    ("--stages", parse_stages, "",
     'total rate over time, linear ramps "duration_s:rate,...", e.g. "10:100,30:100,5:0"'),
    ("--user-rate", _positive, DEFAULT_USER_RATE,
     "without --start-rate/--stages: req/s per user (default 1)"),
    ("--request-timeout", _positive, DEFAULT_REQUEST_TIMEOUT,
     "client timeout per request, in seconds: to connect and per read (default 10)"),
    ("--seed", _seed, None, "seed endpoint choices and payloads, for a repeatable sequence"),
)  # fmt: skip
