"""Input parsing of the reports API: what a report may ask for, and every rejection's field."""

from __future__ import annotations

import json
from typing import Any

import pytest

from app.errors import InvalidInput
from app.schemas import MAX_ORDER_BODY, parse_report_params
from tests.helpers import assert_invalid
from tests.helpers import rejected as raises_invalid

JSON = "application/json"


def body(data: Any) -> bytes:
    return json.dumps(data).encode()


def rejected(content_type: str, raw: bytes) -> InvalidInput:
    return raises_invalid(parse_report_params, content_type, raw)


# --- no parameters ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "raw"),
    [("", b""), (JSON, b""), (JSON, b"   \r\n\t "), ("", b" \n")],
    ids=["no-body-no-type", "no-body-json", "whitespace-json", "whitespace-no-type"],
)
def test_an_empty_body_asks_for_the_default_report(content_type: str, raw: bytes) -> None:
    """No body (or only whitespace) is a report with no parameters, whatever the type says."""
    assert parse_report_params(content_type, raw) == {}


@pytest.mark.parametrize("raw", [b"{}", b" { } ", b"{}\n"])
def test_an_empty_object_asks_for_the_default_report(raw: bytes) -> None:
    """`{}` is read as no parameters: nothing is filled in by default."""
    assert parse_report_params(JSON, raw) == {}


# --- content type -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=utf-8", "Application/JSON",
     " application/json ;x=y"],
)  # fmt: skip
def test_json_content_types_are_accepted(content_type: str) -> None:
    """application/json, with parameters and in any case, is read."""
    assert parse_report_params(content_type, body({"include_tips": True})) == {"include_tips": True}


@pytest.mark.parametrize(
    "content_type",
    ["", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
     "application/problem+json", "text/json"],
)  # fmt: skip
def test_other_content_types_are_400_about_the_content_type(content_type: str) -> None:
    """A non-empty body that is not declared application/json is refused, naming the header."""
    exc = rejected(content_type, b"{}")
    assert_invalid(exc, 400, "unsupported_media_type", "Content-Type")


def test_content_type_is_checked_before_the_body() -> None:
    """With both the type and the body wrong, the type is the one named."""
    assert rejected("text/plain", b"{not json").field == "Content-Type"


# --- body ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"{",
        b"{not json}",
        b'{"include_tips": true,}',
        b"{'include_tips': true}",
        b'{"item_prefix": "\xff\xfe"}',
        b"\xc3\x28",
        b'{"item_prefix": "caf\xe9"}',  # Latin-1, not UTF-8
        b"[" * 10_000,  # nested too deep for the parser's recursion
    ],
    ids=["open", "bare-words", "trailing-comma", "single-quotes", "bad-utf8-in-string",
         "bad-utf8", "latin1", "too-deep"],
)  # fmt: skip
def test_unreadable_bodies_are_400_about_the_body(raw: bytes) -> None:
    """Malformed JSON and bodies that are not UTF-8 are 400 malformed_json on `body`."""
    assert_invalid(rejected(JSON, raw), 400, "malformed_json", "body")


@pytest.mark.parametrize("data", [[], [{"include_tips": True}], "report", 1, None, True], ids=str)
def test_non_object_bodies_are_422_about_the_body(data: Any) -> None:
    """JSON that is read but is not an object is a 422 on `body`."""
    assert_invalid(rejected(JSON, body(data)), 422, "invalid", "body")


@pytest.mark.parametrize("name", ["item", "limit", "Item_Prefix", "include-tips", ""])
def test_an_unknown_field_is_422_naming_it(name: str) -> None:
    """A field the report does not take is refused, naming it (names are case-sensitive)."""
    exc = rejected(JSON, body({"include_tips": False, name: 1}))
    assert_invalid(exc, 422, "unknown_field", name)


def test_a_long_unknown_field_name_is_cut_short() -> None:
    """The name echoed back is at most 100 characters."""
    assert_invalid(rejected(JSON, body({"x" * 500: 1})), 422, "unknown_field", "x" * 100)


def test_body_over_the_limit_is_400_even_when_valid() -> None:
    """A body larger than MAX_ORDER_BODY is refused before it is parsed."""
    raw = b'{"include_tips": true}' + b" " * MAX_ORDER_BODY
    assert_invalid(rejected(JSON, raw), 413, "payload_too_large", "body")


def test_body_at_the_limit_is_read() -> None:
    """Exactly MAX_ORDER_BODY bytes is still allowed."""
    raw = b'{"include_tips": true}'
    raw += b" " * (MAX_ORDER_BODY - len(raw))
    assert len(raw) == MAX_ORDER_BODY
    assert parse_report_params(JSON, raw) == {"include_tips": True}


def test_every_parameter_together_is_read() -> None:
    """All three parameters at once come back, each normalised, and nothing else."""
    params = parse_report_params(
        JSON, body({"item_prefix": "tea", "since": "2024-05-01T12:00:00Z", "include_tips": True})
    )
    assert params == {
        "item_prefix": "tea",
        "since": "2024-05-01T12:00:00+00:00",
        "include_tips": True,
    }


# --- item_prefix --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "prefix",
    ["", "t", "tea", "x" * 100, "\U0001f375" * 100, "é" * 100, "   ", "50%_off\\", " tea\n"],
    ids=["empty", "one", "word", "100-chars", "100-emoji", "100-latin", "spaces", "like-chars",
         "whitespace-kept"],
)  # fmt: skip
def test_good_item_prefixes_are_kept_as_sent(prefix: str) -> None:
    """Up to 100 characters (not bytes), empty included, kept verbatim (LIKE's % and _ too)."""
    assert parse_report_params(JSON, body({"item_prefix": prefix})) == {"item_prefix": prefix}


@pytest.mark.parametrize(
    "value",
    [None, 5, 1.5, True, ["tea"], {"prefix": "tea"}, "x" * 101, "\U0001f375" * 101, "tea\x00",
     "\x00"],
    ids=["null", "int", "float", "bool", "list", "object", "101-chars", "101-emoji", "nul-inside",
         "nul-only"],
)  # fmt: skip
def test_bad_item_prefixes_are_422_about_item_prefix(value: Any) -> None:
    """A non-string, a string over 100 characters, or one holding NUL is refused."""
    exc = rejected(JSON, body({"item_prefix": value}))
    assert_invalid(exc, 422, "invalid", "item_prefix")


@pytest.mark.parametrize("escape", [b"\\ud800", b"\\udfff", b"tea \\udc00"])
def test_lone_surrogates_in_item_prefix_are_400_malformed(escape: bytes) -> None:
    """A JSON escape of an unpaired surrogate is not text: the body cannot be read."""
    exc = rejected(JSON, b'{"item_prefix": "' + escape + b'"}')
    assert_invalid(exc, 400, "malformed_json", "body")


def test_a_surrogate_pair_in_item_prefix_is_one_character() -> None:
    """A correctly paired escape decodes to one character and is accepted."""
    params = parse_report_params(JSON, b'{"item_prefix": "\\ud83c\\udf75"}')
    assert params == {"item_prefix": "\U0001f375"}


# --- since --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("since", "normalised"),
    [
        ("2024-05-01T12:00:00+02:00", "2024-05-01T12:00:00+02:00"),
        ("2024-05-01T12:00:00-07:30", "2024-05-01T12:00:00-07:30"),
        ("2024-05-01T12:00:00+00:00", "2024-05-01T12:00:00+00:00"),
        ("2024-05-01T12:00:00Z", "2024-05-01T12:00:00+00:00"),
        ("2024-05-01 12:00:00.250+01:00", "2024-05-01T12:00:00.250000+01:00"),
        ("2024-05-01T12:00:00+15:59", "2024-05-01T12:00:00+15:59"),
        ("2024-05-01T12:00:00", "2024-05-01T12:00:00+00:00"),
        ("2024-05-01T12:00", "2024-05-01T12:00:00+00:00"),
        ("2024-05-01", "2024-05-01T00:00:00+00:00"),
        ("2024-02-29T23:59:59.999999", "2024-02-29T23:59:59.999999+00:00"),
        ("2024-05-01T12:00:00.12345678901234+05:30", "2024-05-01T12:00:00.123456+05:30"),
    ],
    ids=["plus-offset", "minus-half-hour", "zero-offset", "zulu", "space-and-fraction",
         "largest-offset", "naive", "naive-minutes", "date-only", "leap-day", "40-chars"],
)  # fmt: skip
def test_iso_timestamps_are_normalised(since: str, normalised: str) -> None:
    """An offset is kept (rewritten in isoformat); without one the moment is taken as UTC."""
    assert parse_report_params(JSON, body({"since": since})) == {"since": normalised}


@pytest.mark.parametrize(
    "value",
    [
        "yesterday",
        "",
        " ",
        "2024-13-01",
        "2024-02-30",
        "2024-05-01T12:00:00+00:00 ",
        "01/05/2024",
        "2024-05-01T12:00:00.123456789012345+05:30",  # valid ISO, but 41 characters
        "x" * 41,
        "x" * 10_000,
        1714564800,
        1714564800.5,
        None,
        True,
        ["2024-05-01"],
        {"date": "2024-05-01"},
    ],
    ids=["word", "empty", "space", "month-13", "feb-30", "trailing-space", "us-style",
         "41-char-iso", "41-garbage", "very-long", "epoch-int", "epoch-float", "null", "bool",
         "list", "object"],
)  # fmt: skip
def test_bad_since_is_422_about_since(value: Any) -> None:
    """Anything but an ISO 8601 date-time string of at most 40 characters is refused."""
    exc = rejected(JSON, body({"since": value}))
    assert_invalid(exc, 422, "invalid", "since")


@pytest.mark.parametrize("offset", ["+16:00", "-23:59", "+00:00:30.5", "-05:30:15.000001"])
def test_an_offset_postgresql_cannot_store_is_422(offset: str) -> None:
    """PostgreSQL takes offsets up to 15:59:59, in whole seconds; Python takes more: the API
    refuses what the database would, up front."""
    exc = rejected(JSON, body({"since": f"2024-05-01T12:00:00{offset}"}))
    assert_invalid(exc, 422, "invalid", "since")


# --- include_tips -------------------------------------------------------------------------


@pytest.mark.parametrize("value", [True, False])
def test_include_tips_takes_a_boolean(value: bool) -> None:
    """true and false are kept as sent (false included: it is not dropped)."""
    assert parse_report_params(JSON, body({"include_tips": value})) == {"include_tips": value}


@pytest.mark.parametrize("value", [1, 0, "true", "false", "", None, [], {}], ids=repr)
def test_include_tips_that_is_not_a_boolean_is_422(value: Any) -> None:
    """Truthy or falsy non-booleans are refused rather than guessed at."""
    exc = rejected(JSON, body({"include_tips": value}))
    assert_invalid(exc, 422, "invalid", "include_tips")


def test_types_are_checked_before_the_date() -> None:
    """Types are checked in the order sent, as the body is decoded; `since` is read as a
    date once the body is: a wrong type is reported first, wherever it stands."""
    exc = rejected(JSON, b'{"include_tips": 1, "since": "never"}')
    assert exc.field == "include_tips"
    exc = rejected(JSON, b'{"since": "never", "include_tips": 1}')
    assert exc.field == "include_tips"
    exc = rejected(JSON, b'{"since": 5, "include_tips": 1}')
    assert exc.field == "since"
