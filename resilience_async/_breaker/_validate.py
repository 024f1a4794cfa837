"""Eager validation of breaker settings: each error names the argument and the value given."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any, TypeAlias, TypeVar

from resilience_async._errors import SaturatedError

C = TypeVar("C")
V = TypeVar("V")
# What `excluded` holds: exception types, or predicates that say an exception is excluded.
Exclusion: TypeAlias = type[BaseException] | Callable[[BaseException], bool]


def alias(name: str, value: V | None, old_name: str, old_value: V | None, default: V) -> V:
    """A setting given under our name or aiobreaker's (not both), else the default."""
    if value is not None and old_value is not None:
        raise ValueError(f"give {name} or {old_name} (aiobreaker's name), not both")
    if value is not None:
        return value
    return default if old_value is None else old_value


def seconds(value: float | timedelta) -> float:
    """Seconds from a number or a timedelta (aiobreaker's `timeout_duration` is one)."""
    return value.total_seconds() if isinstance(value, timedelta) else value


def at_least(name: str, value: int, minimum: int, *, most: int | None = None) -> int:
    """An int >= `minimum` (and <= `most`, the window size, when given); bools are refused."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if most is not None and value > most:
        raise ValueError(f"{name} must be <= window_size ({most}), got {value}")
    return value


def positive(name: str, value: float) -> float:
    """A number of seconds > 0 (infinity allowed, NaN not)."""
    if not _is_number(value) or math.isnan(value):
        raise ValueError(f"{name} must be a number of seconds, got {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be > 0 seconds, got {value}")
    return float(value)


def optional_positive(name: str, value: float | None) -> float | None:
    return None if value is None else positive(name, value)


def fraction(name: str, value: float) -> float:
    """A rate in (0, 1]."""
    if not _is_number(value) or not 0 < value <= 1:
        raise ValueError(f"{name} must be a fraction in (0, 1], got {value!r}")
    return float(value)


def optional_fraction(name: str, value: float | None) -> float | None:
    return None if value is None else fraction(name, value)


def callable_arg(name: str, value: C) -> C:
    if not callable(value):
        raise ValueError(f"{name} must be callable, got {value!r}")
    return value


def optional_callable(name: str, value: C | None) -> C | None:
    return None if value is None else callable_arg(name, value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def exclusions(
    items: Iterable[Exclusion],
) -> tuple[tuple[type[BaseException], ...], tuple[Callable[[BaseException], bool], ...]]:
    """Excluded exception types (always with SaturatedError: our saturation never counts)
    and exclusion predicates, as aiobreaker's `exclude` mixes them."""
    types: list[type[BaseException]] = []
    predicates: list[Callable[[BaseException], bool]] = []
    for item in items:
        if isinstance(item, type) and issubclass(item, BaseException):
            types.append(item)
        elif callable(item) and not isinstance(item, type):
            predicates.append(item)
        else:
            raise ValueError(f"excluded must hold exception types or predicates, got {item!r}")
    if SaturatedError not in types:
        types.insert(0, SaturatedError)
    return tuple(types), tuple(predicates)
