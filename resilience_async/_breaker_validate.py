"""Eager validation of breaker settings: each error names the argument and the value given."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, TypeVar

from resilience_async.errors import SaturatedError

C = TypeVar("C")


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


def exception_types(types: Iterable[type[BaseException]]) -> tuple[type[BaseException], ...]:
    """The excluded exception types, always with SaturatedError: our saturation never counts."""
    found = tuple(types)
    for kind in found:
        if not (isinstance(kind, type) and issubclass(kind, BaseException)):
            raise ValueError(f"excluded must hold exception types, got {kind!r}")
    return found if SaturatedError in found else (SaturatedError, *found)
