"""Input parsing of the orders API: every rejection has the right status, code and field."""

from __future__ import annotations

import gzip
import json
import zlib
from typing import Any

import pytest
from django.http import QueryDict

from app.errors import InvalidInput
from app.schemas import (
    MAX_ORDER_BODY,
    NewOrder,
    decode_body,
    parse_consistency_token,
    parse_idempotency_key,
    parse_new_order,
    parse_page,
)
from tests.helpers import assert_invalid, rejected

JSON = "application/json"


def body(data: Any) -> bytes:
    return json.dumps(data).encode()


# --- parse_new_order: content type -------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON",
        " application/json ;charset=UTF-8",
    ],
)
def test_json_content_types_are_accepted(content_type: str) -> None:
    """application/json, with or without parameters and in any case, is read."""
    order = parse_new_order(content_type, body({"item": "tea", "quantity": 2}))
    assert order == NewOrder(item="tea", quantity=2)


@pytest.mark.parametrize(
    "content_type",
    [
        "",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/json-patch+json",
        "application/problem+json",
        "text/json",
        "application/jsonx",
    ],
)
def test_other_content_types_are_refused(content_type: str) -> None:
    """Anything but application/json is a 400 about the Content-Type, whatever the body."""
    exc = rejected(parse_new_order, content_type, body({"item": "tea", "quantity": 2}))
    assert_invalid(exc, 400, "unsupported_media_type", "Content-Type")


def test_content_type_is_checked_before_the_body() -> None:
    """A wrong content type is named even when the body is unreadable too."""
    exc = rejected(parse_new_order, "text/plain", b"{not json")
    assert exc.field == "Content-Type"


# --- parse_new_order: body ----------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{",
        b"{not json}",
        b'{"item": "tea", "quantity": 1,}',
        b"{'item': 'tea', 'quantity': 1}",
        b'{"item": "\xff\xfe", "quantity": 1}',
        b"\xc3\x28",
        b"[" * 10_000,  # nested too deep for the parser's recursion
    ],
)
def test_unreadable_bodies_are_400_about_the_body(raw: bytes) -> None:
    """Malformed JSON and invalid UTF-8 are 400 malformed_json on `body`."""
    exc = rejected(parse_new_order, JSON, raw)
    assert_invalid(exc, 400, "malformed_json", "body")


@pytest.mark.parametrize("data", [[], [{"item": "tea", "quantity": 1}], "tea", 1, None, True])
def test_non_object_bodies_are_422_about_the_body(data: Any) -> None:
    """JSON that is not an object was read but is not an order: 422 on `body`."""
    exc = rejected(parse_new_order, JSON, body(data))
    assert_invalid(exc, 422, "invalid", "body")


def test_an_unknown_field_is_named() -> None:
    """An extra field is refused, naming it."""
    exc = rejected(parse_new_order, JSON, body({"item": "tea", "quantity": 1, "price": 3}))
    assert_invalid(exc, 422, "unknown_field", "price")


def test_a_long_unknown_field_name_is_cut_short() -> None:
    """The name echoed back is at most 100 characters."""
    exc = rejected(parse_new_order, JSON, body({"x" * 500: 1}))
    assert_invalid(exc, 422, "unknown_field", "x" * 100)


def test_body_over_the_limit_is_400_even_when_valid() -> None:
    """A body larger than MAX_ORDER_BODY is refused before it is parsed."""
    padded = b'{"item": "tea", "quantity": 1}' + b" " * MAX_ORDER_BODY
    exc = rejected(parse_new_order, JSON, padded)
    assert_invalid(exc, 413, "payload_too_large", "body")


def test_body_at_the_limit_is_read() -> None:
    """Exactly MAX_ORDER_BODY bytes is still allowed."""
    raw = b'{"item": "tea", "quantity": 1}'
    raw += b" " * (MAX_ORDER_BODY - len(raw))
    assert len(raw) == MAX_ORDER_BODY
    assert parse_new_order(JSON, raw) == NewOrder(item="tea", quantity=1)


# --- parse_new_order: item ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "code"),
    [
        ({"quantity": 1}, "required"),
        ({"item": None, "quantity": 1}, "invalid"),
        ({"item": 5, "quantity": 1}, "invalid"),
        ({"item": ["tea"], "quantity": 1}, "invalid"),
        ({"item": {"name": "tea"}, "quantity": 1}, "invalid"),
        ({"item": True, "quantity": 1}, "invalid"),
        ({"item": "", "quantity": 1}, "invalid"),
        ({"item": "   ", "quantity": 1}, "invalid"),
        ({"item": "\t\n\r ", "quantity": 1}, "invalid"),
        ({"item": "\u00a0\u2003", "quantity": 1}, "invalid"),  # Unicode spaces
        ({"item": "x" * 201, "quantity": 1}, "invalid"),
        ({"item": "tea\x00", "quantity": 1}, "invalid"),
        ({"item": "\x00", "quantity": 1}, "invalid"),
    ],
    ids=[
        "missing",
        "null",
        "number",
        "list",
        "object",
        "bool",
        "empty",
        "spaces",
        "whitespace",
        "unicode-spaces",
        "201-chars",
        "nul-inside",
        "nul-only",
    ],
)
def test_bad_items_are_422_about_item(data: dict[str, Any], code: str) -> None:
    """A missing, non-string, blank, too long or NUL-holding item is refused."""
    exc = rejected(parse_new_order, JSON, body(data))
    assert_invalid(exc, 422, code, "item")


@pytest.mark.parametrize(
    "item", ["x", "x" * 200, " tea ", "é" * 200, "\U0001f375" * 200, "tea\nwith milk"]
)
def test_good_items_are_kept_as_sent(item: str) -> None:
    """Up to 200 characters (not bytes) and inner whitespace are kept verbatim."""
    assert parse_new_order(JSON, body({"item": item, "quantity": 1})).item == item


@pytest.mark.parametrize("escape", [b"\\ud800", b"\\udfff", b"tea \\udc00"])
def test_lone_surrogates_in_item_are_400_malformed(escape: bytes) -> None:
    """JSON escapes of unpaired surrogates are not text: the body cannot be read as text."""
    exc = rejected(parse_new_order, JSON, b'{"item": "' + escape + b'", "quantity": 1}')
    assert_invalid(exc, 400, "malformed_json", "body")


def test_a_surrogate_pair_is_one_character() -> None:
    """A correctly paired escape decodes to one character and is accepted."""
    order = parse_new_order(JSON, b'{"item": "\\ud83c\\udf75", "quantity": 1}')
    assert order.item == "\U0001f375"


def test_item_is_checked_before_quantity() -> None:
    """With both fields wrong, the item is the one named."""
    exc = rejected(parse_new_order, JSON, body({"item": "", "quantity": 0}))
    assert exc.field == "item"


# --- parse_new_order: quantity ------------------------------------------------------------


@pytest.mark.parametrize(
    ("quantity", "code"),
    [
        (..., "required"),
        (None, "invalid"),
        (True, "invalid"),
        (False, "invalid"),
        (2.5, "invalid"),
        (1.0, "invalid"),
        ("3", "invalid"),
        ([3], "invalid"),
        (0, "invalid"),
        (-1, "invalid"),
        (10_001, "invalid"),
        (2**70, "invalid"),
    ],
)
def test_bad_quantities_are_422_about_quantity(quantity: Any, code: str) -> None:
    """A missing, non-integer (bool and float included) or out-of-range quantity is refused."""
    data: dict[str, Any] = {"item": "tea"}
    if quantity is not ...:
        data["quantity"] = quantity
    exc = rejected(parse_new_order, JSON, body(data))
    assert_invalid(exc, 422, code, "quantity")


@pytest.mark.parametrize("raw", [b"NaN", b"Infinity", b"-Infinity"])
def test_json_number_extensions_are_malformed(raw: bytes) -> None:
    """NaN and Infinity are not JSON (RFC 8259), whatever Python's json module reads."""
    exc = rejected(parse_new_order, JSON, b'{"item": "tea", "quantity": ' + raw + b"}")
    assert_invalid(exc, 400, "malformed_json", "body")


def test_exponent_notation_is_a_number_not_an_integer() -> None:
    exc = rejected(parse_new_order, JSON, b'{"item": "tea", "quantity": 1e2}')
    assert_invalid(exc, 422, "invalid", "quantity")


@pytest.mark.parametrize("quantity", [1, 2, 9_999, 10_000])
def test_quantities_in_range_are_accepted(quantity: int) -> None:
    """1 to 10000 inclusive."""
    assert parse_new_order(JSON, body({"item": "tea", "quantity": quantity})).quantity == quantity


# --- NewOrder.fingerprint -----------------------------------------------------------------


def test_equal_orders_have_equal_fingerprints() -> None:
    """The same order, however the JSON was written, has one fingerprint."""
    first = parse_new_order(JSON, b'{"item": "tea", "quantity": 2}')
    second = parse_new_order(JSON, b'{ "quantity" : 2 , "item" : "t\\u0065a" }')
    assert first.fingerprint() == second.fingerprint()
    assert len(first.fingerprint()) == 64
    int(first.fingerprint(), 16)  # hex


@pytest.mark.parametrize(
    "other",
    [
        NewOrder(item="tea", quantity=3),
        NewOrder(item="Tea", quantity=2),
        NewOrder(item="tea ", quantity=2),
        NewOrder(item="coffee", quantity=2),
    ],
)
def test_different_orders_have_different_fingerprints(other: NewOrder) -> None:
    """Any difference in item or quantity changes the fingerprint."""
    assert NewOrder(item="tea", quantity=2).fingerprint() != other.fingerprint()


# --- parse_idempotency_key ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "key"),
    [
        (None, None),
        ('"abc-123"', "abc-123"),
        ("abc-123", "abc-123"),
        ('"with space"', "with space"),
        ("  padded  ", "padded"),
        ('"' + "k" * 255 + '"', "k" * 255),
        ("k" * 255, "k" * 255),
        ("8e03978e-40d5-43e8-bc93-6894a57f9324", "8e03978e-40d5-43e8-bc93-6894a57f9324"),
        ("!#$%&'*+-.^_`|~:;<=>?@[]{}()/", "!#$%&'*+-.^_`|~:;<=>?@[]{}()/"),
    ],
)
def test_idempotency_keys_are_read(header: str | None, key: str | None) -> None:
    """A quoted sf-string or a bare token gives the key; no header gives None."""
    assert parse_idempotency_key(header) == key


@pytest.mark.parametrize(
    "header",
    [
        "",
        "   ",
        '""',
        '"',
        '"abc',
        'abc"',
        "k" * 256,
        '"' + "k" * 256 + '"',
        "with space",
        '"with"quote"',
        '"back\\slash"',
        "tab\there",
        '"tab\there"',
        "bell\x07",
        "del\x7f",
        "nul\x00",
        "caf\u00e9",
        '"caf\u00e9"',
        "\u2603",
    ],
)
def test_bad_idempotency_keys_are_400_about_the_header(header: str) -> None:
    """Empty, too long, control characters, non-ASCII or broken quoting are refused."""
    exc = rejected(parse_idempotency_key, header)
    assert_invalid(exc, 400, "invalid_header", "Idempotency-Key")


# --- parse_consistency_token --------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (None, None),
        ("", None),
        ("   ", None),
        ("0/3044D18", "0/3044D18"),
        ("16/b374d848", "16/b374d848"),
        ("  16/B374D848  ", "16/B374D848"),
        ("FFFFFFFF/FFFFFFFF", "FFFFFFFF/FFFFFFFF"),
    ],
)
def test_consistency_tokens_are_read(header: str | None, token: str | None) -> None:
    """No or blank header means no token; an LSN is returned, trimmed."""
    assert parse_consistency_token(header) == token


@pytest.mark.parametrize(
    "header", ["garbage", "0/", "/1", "1/2/3", "+1/2", "123456789/0", "0x1/0x2", "1/2 3"]
)
def test_bad_consistency_tokens_are_400_about_the_header(header: str) -> None:
    """A token that is not an LSN is a 400 naming X-Consistency-Token."""
    exc = rejected(parse_consistency_token, header)
    assert_invalid(exc, 400, "invalid_header", "X-Consistency-Token")


# --- parse_page ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "page"),
    [
        ({}, (20, None)),
        (QueryDict(""), (20, None)),
        (QueryDict("limit=5"), (5, None)),
        ({"limit": "1"}, (1, None)),
        ({"limit": "100"}, (100, None)),
        ({"limit": "007"}, (7, None)),
        ({"before": "1"}, (20, 1)),
        (QueryDict("limit=2&before=42"), (2, 42)),
        ({"before": str(2**63 - 1)}, (20, 2**63 - 1)),
        (QueryDict("unrelated=x"), (20, None)),
    ],
)
def test_pages_are_read(query: Any, page: tuple[int, int | None]) -> None:
    """limit defaults to 20 and before to none; in-range values are taken as integers."""
    assert parse_page(query) == page


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "abc"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"limit": "+1"}, "limit"),
        ({"limit": "1.5"}, "limit"),
        ({"limit": "1e2"}, "limit"),
        ({"limit": ""}, "limit"),
        ({"limit": " 5"}, "limit"),
        ({"limit": "5\n"}, "limit"),
        ({"limit": "\u0665"}, "limit"),  # Arabic-Indic five: a digit, but not ASCII
        ({"limit": "9" * 30}, "limit"),
        (QueryDict("limit="), "limit"),
        (QueryDict("limit=1&limit=500"), "limit"),  # the last value counts, as in Django
        ({"before": "0"}, "before"),
        ({"before": "-1"}, "before"),
        ({"before": "abc"}, "before"),
        ({"before": "1.5"}, "before"),
        ({"before": ""}, "before"),
        ({"before": str(2**63)}, "before"),
        ({"before": "9" * 20}, "before"),
        (QueryDict("limit=5&before=x"), "before"),
    ],
)
def test_bad_page_parameters_are_400_naming_them(query: Any, field: str) -> None:
    """Out-of-range or non-integer limit/before are refused, naming the parameter."""
    exc = rejected(parse_page, query)
    assert_invalid(exc, 400, "invalid_parameter", field)


@pytest.mark.parametrize(
    "body",
    [
        '{"item": "tea", "quantity": 1}'.encode("utf-16"),
        b'\xef\xbb\xbf{"item": "tea", "quantity": 1}',  # a UTF-8 byte order mark
    ],
)
def test_bodies_not_in_plain_utf8_are_malformed(body: bytes) -> None:
    """RFC 8259: JSON exchanged between systems is UTF-8 (no BOM); json.loads would guess."""
    with pytest.raises(InvalidInput) as raised:
        parse_new_order("application/json", body)
    assert_invalid(raised.value, 400, "malformed_json", "body")


@pytest.mark.parametrize("digits", ["9" * 5000, "-" + "9" * 5000])
def test_a_huge_quantity_is_out_of_range_not_malformed(digits: str) -> None:
    """Beyond Python's 4300-digit int limit the error still names the field."""
    with pytest.raises(InvalidInput) as raised:
        parse_new_order("application/json", f'{{"item": "tea", "quantity": {digits}}}'.encode())
    assert_invalid(raised.value, 422, "invalid", "quantity")


# --- Content-Encoding -----------------------------------------------------------------------

ORDER = b'{"item": "tea", "quantity": 2}'


@pytest.mark.parametrize(
    ("encoding", "encoded"),
    [
        (None, ORDER),
        ("identity", ORDER),
        ("gzip", gzip.compress(ORDER, mtime=0)),
        ("GZip ", gzip.compress(ORDER, mtime=0)),
        ("x-gzip", gzip.compress(ORDER, mtime=0)),
        ("deflate", zlib.compress(ORDER)),
    ],
)
def test_supported_encodings_are_decoded(encoding: str | None, encoded: bytes) -> None:
    assert decode_body(encoding, encoded) == ORDER


@pytest.mark.parametrize("encoding", ["br", "compress", "zstd", "gzip, br", "x" * 100])
def test_other_encodings_are_415_naming_the_header(encoding: str) -> None:
    exc = rejected(decode_body, encoding, ORDER)
    assert_invalid(exc, 415, "unsupported_content_encoding", "Content-Encoding")
    assert len(exc.message) < 120


@pytest.mark.parametrize(
    ("encoding", "body"),
    [
        ("gzip", ORDER),  # a plain body that says it is gzip
        ("gzip", gzip.compress(ORDER, mtime=0)[:-5]),  # cut short
        ("gzip", gzip.compress(ORDER, mtime=0) + b"junk"),  # followed by something else
        ("deflate", gzip.compress(ORDER, mtime=0)),
    ],
    ids=["plain", "truncated", "trailing-junk", "gzip-as-deflate"],
)
def test_a_body_that_is_not_what_its_encoding_says_is_400(encoding: str, body: bytes) -> None:
    exc = rejected(decode_body, encoding, body)
    assert_invalid(exc, 400, "malformed_body", "Content-Encoding")


def test_a_bomb_stops_inflating_at_the_limit() -> None:
    """10 MB of zeros in about 10 kB of gzip: refused once MAX_ORDER_BODY + 1 bytes are out."""
    bomb = gzip.compress(b"0" * 10_000_000)
    assert len(bomb) < 20_000
    exc = rejected(decode_body, "gzip", bomb)
    assert (exc.code, exc.field) == ("payload_too_large", "body")
    assert MAX_ORDER_BODY < 20_000
