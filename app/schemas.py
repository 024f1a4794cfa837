"""Input parsing for the API: every rejection names the field it is about.

Parsers raise `InvalidInput(status, code, message, field)` (an `app.errors.ApiError`); the
views' one error mapping turns it into the service's JSON error. 400 means the request could
not be read (body, headers, query string); 422 means it was read and a field's value is not
acceptable.
"""

from __future__ import annotations

import json
import re
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from app import idempotency
from app.errors import InvalidInput
from resilience_async import InvalidLsnError, parse_lsn

MAX_ORDER_BODY = 16 * 1024  # bytes; an order is two short fields
MAX_ITEM_LENGTH = 200
MIN_QUANTITY, MAX_QUANTITY = 1, 10_000
MAX_PAGE, DEFAULT_PAGE = 100, 20
MAX_ID = 2**63 - 1  # bigint
# zlib's window bits for each Content-Encoding taken: gzip's header, or zlib's (deflate).
_DECODERS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
# draft-ietf-httpapi-idempotency-key-header: an sf-string; a bare token is accepted too.
_IDEMPOTENCY_KEY = re.compile(r'"([\x20-\x21\x23-\x5b\x5d-\x7e]{1,255})"|([!#-~]{1,255})')


@dataclass(frozen=True, slots=True)
class NewOrder:
    item: str
    quantity: int

    def fingerprint(self) -> str:
        """A digest of the request's meaning: the same order sent twice has the same one."""
        return idempotency.fingerprint({"item": self.item, "quantity": self.quantity})


def parse_new_order(content_type: str, body: bytes) -> NewOrder:
    """`{"item": non-empty string <= 200, "quantity": integer 1..10000}`, nothing else."""
    data = _json_object(content_type, body)
    for name in data:
        if name not in ("item", "quantity"):
            raise InvalidInput(422, "unknown_field", "unknown field", str(name)[:100])
    if "item" not in data:
        raise InvalidInput(422, "required", "item is required", "item")
    return NewOrder(item=_text(data["item"], "item", MAX_ITEM_LENGTH), quantity=_quantity(data))


def _json_object(content_type: str, body: bytes) -> dict[str, Any]:
    """The body as a JSON object: application/json, at most MAX_ORDER_BODY, UTF-8 (RFC 8259)."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise InvalidInput(
            400,
            "unsupported_media_type",
            f"send application/json, not {media_type or 'no content type'!r}",
            "Content-Type",
        )
    if len(body) > MAX_ORDER_BODY:
        raise body_too_large()
    try:
        data = json.loads(body.decode("utf-8"), parse_int=_bounded_int)
    except (ValueError, RecursionError):
        raise InvalidInput(400, "malformed_json", "the body is not UTF-8 JSON", "body") from None
    if not isinstance(data, dict):
        raise InvalidInput(422, "invalid", "the body must be a JSON object", "body")
    return data


def _bounded_int(digits: str) -> int:
    """JSON integers past any valid value stay out of range instead of failing to parse
    (Python refuses int() of more than 4300 digits), so the error names the field."""
    if len(digits.lstrip("-")) > 30:
        return -(10**30) if digits.startswith("-") else 10**30
    return int(digits)


def decode_body(content_encoding: str | None, raw: bytes) -> bytes:
    """The body as sent before its `Content-Encoding`: identity, gzip or deflate, decoded to
    at most MAX_ORDER_BODY bytes (a small bomb can't inflate into memory)."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding == "identity":
        return raw
    if encoding not in _DECODERS:
        raise InvalidInput(
            415, "unsupported_content_encoding",
            f"send the body as identity, gzip or deflate, not {encoding[:40]!r}",
            "Content-Encoding",
        )  # fmt: skip
    decoder = zlib.decompressobj(_DECODERS[encoding])
    malformed = InvalidInput(
        400, "malformed_body", f"the body is not valid {encoding} data", "Content-Encoding"
    )
    try:
        decoded = decoder.decompress(raw, MAX_ORDER_BODY + 1)
    except zlib.error:
        raise malformed from None
    if len(decoded) > MAX_ORDER_BODY:
        raise body_too_large()
    if not decoder.eof or decoder.unused_data:  # cut short, or followed by something else
        raise malformed
    return decoded


def body_too_large() -> InvalidInput:
    return InvalidInput(
        413, "payload_too_large", f"the body is larger than {MAX_ORDER_BODY} bytes", "body"
    )


def _quantity(data: dict[str, Any]) -> int:
    if "quantity" not in data:
        raise InvalidInput(422, "required", "quantity is required", "quantity")
    quantity = data["quantity"]
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        raise InvalidInput(422, "invalid", "quantity must be an integer", "quantity")
    if not MIN_QUANTITY <= quantity <= MAX_QUANTITY:
        raise InvalidInput(
            422,
            "invalid",
            f"quantity must be from {MIN_QUANTITY} to {MAX_QUANTITY}",
            "quantity",
        )
    return quantity


def parse_idempotency_key(header: str | None) -> str | None:
    """The `Idempotency-Key` header's key (1-255 printable ASCII characters), if sent."""
    if header is None:
        return None
    match = _IDEMPOTENCY_KEY.fullmatch(header.strip())
    if match is None:
        raise InvalidInput(
            400,
            "invalid_header",
            "must be 1-255 printable ASCII characters, optionally in double quotes",
            "Idempotency-Key",
        )
    return match[1] or match[2]


def parse_consistency_token(header: str | None) -> str | None:
    """The `X-Consistency-Token` header, checked to be an LSN as a write returned it."""
    if header is None or not header.strip():
        return None
    try:
        parse_lsn(header)
    except InvalidLsnError:
        raise InvalidInput(
            400,
            "invalid_header",
            "must be a consistency_token returned by a write",
            "X-Consistency-Token",
        ) from None
    return header.strip()


def parse_page(query: Any) -> tuple[int, int | None]:
    """`limit` (1..100, default 20) and `before` (an order id: the keyset cursor)."""
    limit = _int_param(query, "limit", DEFAULT_PAGE, 1, MAX_PAGE)
    before = _int_param(query, "before", None, 1, MAX_ID)
    return limit, before


def _int_param(query: Any, name: str, default: Any, low: int, high: int) -> Any:
    raw = query.get(name)
    if raw is None:
        return default
    if not re.fullmatch(r"[0-9]{1,19}", raw) or not low <= int(raw) <= high:
        raise InvalidInput(400, "invalid_parameter", f"must be an integer {low}..{high}", name)
    return int(raw)


def parse_report_params(content_type: str, body: bytes) -> dict[str, Any]:
    """`{}` or any of `item_prefix` (text <= 100), `since` (ISO 8601), `include_tips` (bool)."""
    if not body.strip():
        return {}
    data = _json_object(content_type, body)
    params: dict[str, Any] = {}
    for name, value in data.items():
        if name == "item_prefix":
            params[name] = _text(value, name, 100, allow_empty=True)
        elif name == "since":
            params[name] = _timestamp(value, name)
        elif name == "include_tips":
            if not isinstance(value, bool):
                raise InvalidInput(422, "invalid", "include_tips must be true or false", name)
            params[name] = value
        else:
            raise InvalidInput(422, "unknown_field", "unknown field", str(name)[:100])
    return params


def _text(value: Any, name: str, limit: int, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise InvalidInput(422, "invalid", f"{name} must be a string", name)
    if not allow_empty and not value.strip():
        raise InvalidInput(422, "invalid", f"{name} must not be blank", name)
    if len(value) > limit:
        raise InvalidInput(422, "invalid", f"{name} must be at most {limit} characters", name)
    if "\x00" in value:  # PostgreSQL text cannot hold NUL
        raise InvalidInput(422, "invalid", f"{name} must not contain NUL characters", name)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(422, "invalid", f"{name} must be valid Unicode text", name) from None
    return value


def _timestamp(value: Any, name: str) -> str:
    """An ISO 8601 date-time; without a UTC offset it is taken as UTC."""
    if not isinstance(value, str) or len(value) > 40:
        raise InvalidInput(422, "invalid", f"{name} must be an ISO 8601 date-time", name)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(422, "invalid", f"{name} must be an ISO 8601 date-time", name) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    offset = moment.utcoffset()
    if offset is not None and abs(offset) >= timedelta(hours=16):  # PostgreSQL's limit
        raise InvalidInput(422, "invalid", f"{name} has a UTC offset beyond 15:59", name)
    if offset is not None and offset.microseconds:  # PostgreSQL takes whole seconds only
        raise InvalidInput(
            422, "invalid", f"{name} has a UTC offset with a fraction of a second", name
        )
    return moment.isoformat()
