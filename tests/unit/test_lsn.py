"""parse_lsn / format_lsn: PostgreSQL's `X/Y` text and the 64-bit integer, both ways."""

from __future__ import annotations

import pytest

from resilience_async import InvalidLsnError, format_lsn, parse_lsn

MAX_LSN = 2**64 - 1


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0/0", 0),
        ("0/1", 1),
        ("0/3044D18", 0x3044D18),
        ("16/B374D848", (0x16 << 32) | 0xB374D848),
        ("1/0", 1 << 32),
        ("FFFFFFFF/FFFFFFFF", MAX_LSN),
    ],
)
def test_parse_and_format_round_trip(text: str, value: int) -> None:
    """Text as pg_lsn prints it parses to its integer, which formats back to the same text."""
    assert parse_lsn(text) == value
    assert format_lsn(value) == text


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("16/b374d848", (0x16 << 32) | 0xB374D848),
        ("ff/aBcD", (0xFF << 32) | 0xABCD),
        ("00000000/00000001", 1),
        ("  0/3044D18\n", 0x3044D18),
    ],
)
def test_parse_accepts_lowercase_padding_and_surrounding_space(text: str, value: int) -> None:
    """Lower-case hex, zero-padded halves and surrounding whitespace read as the same LSN."""
    assert parse_lsn(text) == value


def test_format_writes_upper_case_without_padding() -> None:
    """The formatted form is canonical: upper-case hex, no leading zeros."""
    assert format_lsn(parse_lsn("00000016/0000abcd")) == "16/ABCD"


@pytest.mark.parametrize(
    "value", [0, 1, 0xFFFFFFFF, 1 << 32, (1 << 32) + 1, 0x16_B374D848, MAX_LSN - 1, MAX_LSN]
)
def test_format_then_parse_is_the_identity(value: int) -> None:
    """Every integer in range survives a trip through text."""
    assert parse_lsn(format_lsn(value)) == value


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "0",
        "0/",
        "/1",
        "/",
        "1/2/3",
        "+1/2",
        "1/+2",
        "-1/2",
        "1_0/2",
        "1/2_0",
        " g/1",
        "1/g",
        "0x1/2",
        "1 /2",
        "1/ 2",
        "123456789/0",
        "0/123456789",
        "1/2\x00",
        "\u0661/\u0662",  # Arabic-Indic digits are digits, but not hex
        "\uff11/\uff12",  # full-width digits likewise
    ],
)
def test_parse_rejects_what_is_not_an_lsn(text: str) -> None:
    """Anything but two 1-8 digit ASCII hex halves around one slash is refused."""
    with pytest.raises(InvalidLsnError):
        parse_lsn(text)


def test_invalid_lsn_error_is_a_value_error() -> None:
    """Callers that catch ValueError catch a bad LSN too."""
    with pytest.raises(ValueError, match="not an LSN"):
        parse_lsn("nope")


@pytest.mark.parametrize("value", [-1, -(2**63), MAX_LSN + 1, 2**80])
def test_format_rejects_out_of_range_integers(value: int) -> None:
    """Only 0..2**64-1 is an LSN."""
    with pytest.raises(InvalidLsnError, match="out of range"):
        format_lsn(value)
