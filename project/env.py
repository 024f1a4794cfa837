"""Typed readers for environment variables, each error naming the variable.

Only `project/settings.py` calls these: it is the one place that reads the environment.
"""

from __future__ import annotations

from collections.abc import Mapping

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class Env:
    """Reads settings from a mapping (normally `os.environ`) with defaults and clear errors."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def is_set(self, name: str) -> bool:
        return bool(self._environ.get(name, "").strip())

    def str(self, name: str, default: str) -> str:
        value = self._environ.get(name, "").strip()
        return value or default

    def bool(self, name: str, default: bool) -> bool:
        raw = self._environ.get(name)
        if raw is None:
            return default
        value = raw.strip().lower()
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), got {raw!r}")

    def int(self, name: str, default: int, *, min_value: int = 0) -> int:
        raw = self._environ.get(name, "").strip()
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from None
        if value < min_value:
            raise ImproperlyConfigured(f"{name} must be >= {min_value}, got {value}")
        return value

    def seconds(self, name: str, default: float, *, allow_zero: bool = True) -> float:
        """A non-negative duration in seconds (fractions allowed)."""
        value = self._float(name, default, "a number of seconds")
        if not value >= 0:  # also rejects NaN
            raise ImproperlyConfigured(f"{name} must be a non-negative number of seconds")
        if value == 0 and not allow_zero:
            raise ImproperlyConfigured(f"{name} must be more than 0 seconds")
        return value

    def fraction(self, name: str, default: float) -> float:
        """A number from 0 to 1."""
        value = self._float(name, default, "a number from 0 to 1")
        if not 0 <= value <= 1:
            raise ImproperlyConfigured(f"{name} must be a number from 0 to 1, got {value}")
        return value

    def number(self, name: str, default: float, *, min_value: float = 0.0,
               above: bool = False) -> float:  # fmt: skip
        """A number, at least `min_value` (more than it, with `above`: a ratio above 1)."""
        value = self._float(name, default, "a number")
        if not (value > min_value if above else value >= min_value):  # also rejects NaN
            bound = f"{'>' if above else '>='} {min_value:g}"
            raise ImproperlyConfigured(f"{name} must be a number {bound}, got {value}")
        return value

    def _float(self, name: str, default: float, what: str) -> float:
        raw = self._environ.get(name, "").strip()
        if not raw:
            return default
        try:
            return float(raw)
        except ValueError:
            raise ImproperlyConfigured(f"{name} must be {what}, got {raw!r}") from None

    def rate(self, name: str, default: str) -> tuple[int, float] | None:
        """`REQUESTS/SECONDS` (e.g. `600/60`), or None for `off` (or `0`)."""
        raw = self.str(name, default).strip().lower()
        if raw in ("off", "0", ""):
            return None
        requests, _, seconds = raw.partition("/")
        try:
            rate = int(requests), float(seconds)
        except ValueError:
            rate = (0, 0.0)
        if rate[0] < 1 or not 0 < rate[1] < 86_400:
            raise ImproperlyConfigured(
                f"{name} must be REQUESTS/SECONDS (e.g. 600/60) or off, got {raw!r}"
            )
        return rate

    def list(self, name: str, default: list[str]) -> list[str]:
        raw = self._environ.get(name, "")
        items = [item.strip() for item in raw.split(",") if item.strip()]
        return items or default

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.str(name, default).lower()
        if value not in choices:
            raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, got {value!r}")
        return value

    def required(self, names: list[str], *, why: str) -> None:
        """Fail at start, naming every variable in `names` that is not set."""
        missing = [name for name in names if not self.is_set(name)]
        if missing:
            raise ImproperlyConfigured(f"{', '.join(missing)} must be set {why}")
