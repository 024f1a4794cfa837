"""Request bodies read as Go's encoding/json reads them into Toxiproxy's structs.

A value of the wrong JSON type is a 400 worded as Go words it; unknown fields are ignored and
`null` leaves a field as it was, as in Go.
"""

from __future__ import annotations

import json
from typing import Any

from devstack.faults.proxy.errors import BadRequestBody


def parse(raw: bytes) -> object:
    """The JSON document of a request body (an empty body is Go's "EOF")."""
    if not raw.strip():
        raise BadRequestBody("EOF")
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise BadRequestBody(f"invalid JSON: {exc}") from exc


def as_object(value: object, go_type: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequestBody(_mismatch(value, f"Go value of type {go_type}"))
    return value


def as_list(value: object, go_type: str) -> list[Any]:
    if not isinstance(value, list):
        raise BadRequestBody(_mismatch(value, f"Go value of type {go_type}"))
    return value


def string(obj: dict[str, Any], key: str, where: str, default: str) -> str:
    value = obj.get(key)
    if value is None:
        return default
    if not isinstance(value, str):
        raise BadRequestBody(_mismatch(value, f"Go struct field {where}.{key} of type string"))
    return value


def boolean(obj: dict[str, Any], key: str, where: str, default: bool) -> bool:
    value = obj.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise BadRequestBody(_mismatch(value, f"Go struct field {where}.{key} of type bool"))
    return value


def number(obj: dict[str, Any], key: str, where: str, default: float) -> float:
    """A float32 field (a toxic's toxicity)."""
    value = obj.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequestBody(_mismatch(value, f"Go struct field {where}.{key} of type float32"))
    return float(value)


def integer(obj: dict[str, Any], key: str, where: str, default: int) -> int:
    """An int64 field (every toxic attribute): `1.5` and `1e3` are refused, as in Go."""
    value = obj.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        target = f"Go struct field {where}.{key} of type int64"
        raise BadRequestBody(_mismatch(value, target, literal=isinstance(value, float)))
    return value


def _mismatch(value: object, target: str, *, literal: bool = False) -> str:
    """Go's UnmarshalTypeError text; a number is quoted when it is the value that does not
    fit (`number 1.5` into an int64), not its kind."""
    if isinstance(value, bool):
        kind = "bool"
    elif isinstance(value, int | float):
        kind = f"number {json.dumps(value)}" if literal else "number"
    elif isinstance(value, dict):
        kind = "object"
    else:
        kind = "array" if isinstance(value, list) else "string"
    return f"json: cannot unmarshal {kind} into {target}"
