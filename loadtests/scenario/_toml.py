"""Reading one TOML table with checks whose errors name the file and the key path."""

from __future__ import annotations

import difflib
import enum
import json
import math
from collections.abc import Iterable
from typing import Any, Final, TypeVar, overload

_T = TypeVar("_T")


class _Missing(enum.Enum):
    MISSING = enum.auto()


MISSING: Final = _Missing.MISSING


class SpecError(ValueError):
    """A scenario file is wrong; `file`, `key` (a path like ``load.stages[1].rate``), `problem`."""

    def __init__(self, file: str, key: str, problem: str) -> None:
        super().__init__(f"{file}: {key}: {problem}" if key else f"{file}: {problem}")
        self.file = file
        self.key = key
        self.problem = problem


def show(value: object) -> str:
    """A value as the file spells it (strings in double quotes), cut short when long."""
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_number(value: object) -> bool:
    # TOML booleans are Python ints: `rate = true` must not read as 1.
    return type(value) in (int, float) and math.isfinite(value)  # type: ignore[arg-type]


class Table:
    """One table of the file: `path` is its key path ("" for the document itself)."""

    def __init__(self, file: str, path: str, data: object) -> None:
        if not isinstance(data, dict):
            raise SpecError(file, path, f"must be a table, got {show(data)}")
        self.file = file
        self.path = path
        self.data: dict[str, Any] = data

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def error(self, name: str, problem: str) -> SpecError:
        return SpecError(self.file, self.key(name), problem)

    def check_keys(self, allowed: Iterable[str]) -> None:
        """Refuse keys outside `allowed`, suggesting the closest one: typos must not pass."""
        allowed = tuple(allowed)
        for name in self.data:
            if name not in allowed:
                close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.6)
                hint = f" (did you mean {close[0]}?)" if close else ""
                if not close and allowed:
                    hint = f" (known: {', '.join(allowed)})"
                raise self.error(name, f"unknown key{hint}")

    def get(self, name: str, default: Any = MISSING) -> Any:
        value = self.data.get(name, default)
        if value is MISSING:
            raise self.error(name, "is required")
        return value

    def table(self, name: str, default: dict[str, Any] | _Missing = MISSING) -> Table:
        return Table(self.file, self.key(name), self.get(name, default))

    def tables(self, name: str) -> list[Table]:
        """An array of tables (``[[name]]``); missing means none."""
        values = self.get(name, [])
        if not isinstance(values, list):
            raise self.error(name, f"must be an array of tables, got {show(values)}")
        return [Table(self.file, f"{self.key(name)}[{i}]", value) for i, value in enumerate(values)]

    def string(self, name: str, default: str | _Missing = MISSING) -> str:
        value = self.get(name, default)
        if not isinstance(value, str) or not value.strip():
            raise self.error(name, f"must be a non-empty string, got {show(value)}")
        return value

    @overload
    def choice(self, name: str, choices: tuple[str, ...], *, what: str = ...) -> str: ...
    @overload
    def choice(
        self, name: str, choices: tuple[str, ...], *, what: str = ..., default: _T
    ) -> str | _T: ...
    def choice(
        self, name: str, choices: tuple[str, ...], *, what: str = "value", default: Any = MISSING
    ) -> Any:
        if name not in self.data and default is not MISSING:
            return default
        value = self.get(name)
        if value not in choices or not isinstance(value, str):
            raise self.error(name, f"unknown {what} {show(value)} (one of: {', '.join(choices)})")
        return value

    @overload
    def number(self, name: str, *, positive: bool = ..., maximum: float | None = ...) -> float: ...
    @overload
    def number(
        self, name: str, *, default: _T, positive: bool = ..., maximum: float | None = ...
    ) -> float | _T: ...
    def number(
        self,
        name: str,
        *,
        default: Any = MISSING,
        positive: bool = False,
        maximum: float | None = None,
    ) -> Any:
        """A number >= 0 (> 0 when `positive`), at most `maximum`."""
        if name not in self.data and default is not MISSING:
            return default
        value = self.get(name)
        lowest = "> 0" if positive else ">= 0"
        fits = _is_number(value) and (value > 0 if positive else value >= 0)
        if maximum is not None:
            lowest = f"{lowest} and <= {maximum:g}"
            fits = fits and value <= maximum
        if not fits:
            raise self.error(name, f"must be a number {lowest}, got {show(value)}")
        return float(value)

    def boolean(self, name: str) -> bool:
        value = self.get(name)
        if not isinstance(value, bool):
            raise self.error(name, f"must be true or false, got {show(value)}")
        return value

    @overload
    def integer(self, name: str, *, minimum: int) -> int: ...
    @overload
    def integer(self, name: str, *, default: _T, minimum: int) -> int | _T: ...
    def integer(self, name: str, *, default: Any = MISSING, minimum: int) -> Any:
        if name not in self.data and default is not MISSING:
            return default
        value = self.get(name)
        if type(value) is not int or value < minimum:
            raise self.error(name, f"must be an integer >= {minimum}, got {show(value)}")
        return value
