"""Structured log lines: JSON and console formatters, with the request id from the context."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest

from resilience_async import ConsoleFormatter, JsonFormatter, RequestIdFilter, request_id_var

TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


class Captured:
    """A private logger whose lines go to a buffer through the given formatter."""

    def __init__(self, formatter: logging.Formatter) -> None:
        self.buffer = io.StringIO()
        self.handler = logging.StreamHandler(self.buffer)
        self.handler.setFormatter(formatter)
        self.handler.addFilter(RequestIdFilter())
        self.logger = logging.getLogger("tests.unit.test_logs.captured")
        self.logger.handlers = [self.handler]
        self.logger.setLevel(logging.DEBUG)
        self.logger.propagate = False

    def text(self) -> str:
        return self.buffer.getvalue()

    def json_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text().splitlines()]

    def close(self) -> None:
        self.logger.handlers = []
        self.handler.close()


@pytest.fixture
def json_log() -> Iterator[Captured]:
    captured = Captured(JsonFormatter(service="resilient-django"))
    yield captured
    captured.close()


@pytest.fixture
def console_log() -> Iterator[Captured]:
    captured = Captured(ConsoleFormatter())
    yield captured
    captured.close()


@pytest.fixture
def request_id() -> Iterator[str]:
    token = request_id_var.set("req-7f3a")
    yield "req-7f3a"
    request_id_var.reset(token)


def test_json_line_has_core_fields(json_log: Captured) -> None:
    """A JSON line is one object with ts, level, logger, message and service."""
    json_log.logger.warning("order %s placed", 42)

    (entry,) = json_log.json_lines()
    assert TS.fullmatch(entry["ts"])
    assert entry["level"] == "warning"
    assert entry["logger"] == json_log.logger.name
    assert entry["message"] == "order 42 placed"
    assert entry["service"] == "resilient-django"
    assert "request_id" not in entry


def test_json_line_without_service_omits_it() -> None:
    """A JsonFormatter without a service name writes no service key."""
    captured = Captured(JsonFormatter())
    try:
        captured.logger.info("hello")
        (entry,) = captured.json_lines()
    finally:
        captured.close()
    assert "service" not in entry


def test_json_line_carries_request_id_from_context(json_log: Captured, request_id: str) -> None:
    """The request id set in the context variable appears on every line."""
    json_log.logger.info("first")
    json_log.logger.info("second")

    assert [entry["request_id"] for entry in json_log.json_lines()] == [request_id, request_id]


def test_json_line_has_extra_fields_as_keys(json_log: Captured) -> None:
    """Fields passed with extra= become top-level keys; non-JSON values are stringified."""
    json_log.logger.info(
        "charged", extra={"order_id": 7, "amount": 12.5, "tags": ["a"], "path": object}
    )

    (entry,) = json_log.json_lines()
    assert entry["order_id"] == 7
    assert entry["amount"] == 12.5
    assert entry["tags"] == ["a"]
    assert entry["path"] == str(object)
    assert not {"args", "msg", "levelno", "pathname", "request_id"} & entry.keys()


def test_json_line_includes_exception_text_on_one_line(json_log: Captured) -> None:
    """An exception's traceback is one escaped field; the output stays one line."""
    try:
        raise ValueError("bad payload")
    except ValueError:
        json_log.logger.exception("request failed")

    assert json_log.text().count("\n") == 1
    (entry,) = json_log.json_lines()
    assert entry["level"] == "error"
    assert entry["exception"].startswith("Traceback (most recent call last):")
    assert entry["exception"].endswith("ValueError: bad payload")


def test_request_id_filter_stamps_none_outside_a_request() -> None:
    """Outside a request the filter sets request_id to None and keeps the record."""
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    assert RequestIdFilter().filter(record) is True
    assert record.__dict__["request_id"] is None


def test_console_line_has_request_id_and_extras(console_log: Captured, request_id: str) -> None:
    """A console line shows level, logger, message, then request_id=… and the extras."""
    console_log.logger.info("charged %s", "order", extra={"order_id": 7, "amount": 12.5})

    line = console_log.text().rstrip("\n")
    assert re.fullmatch(
        rf"\d\d:\d\d:\d\d INFO    {re.escape(console_log.logger.name)}: charged order"
        rf"  request_id={request_id} order_id=7 amount=12.5",
        line,
    )


def test_console_line_without_extras_has_no_trailer(console_log: Captured) -> None:
    """Without a request id or extras the console line ends with the message."""
    console_log.logger.error("plain")

    line = console_log.text().rstrip("\n")
    assert line.endswith(f"ERROR   {console_log.logger.name}: plain")


def test_console_line_appends_exception_text(console_log: Captured) -> None:
    """A console line with an exception is followed by its traceback."""
    try:
        raise KeyError("missing")
    except KeyError:
        console_log.logger.exception("lookup failed", extra={"key": "missing"})

    first, *rest = console_log.text().rstrip("\n").splitlines()
    assert first.endswith("lookup failed  key=missing")
    assert rest[0] == "Traceback (most recent call last):"
    assert rest[-1] == "KeyError: 'missing'"
