"""The records file: one JSON line per request, buffered, appended at each flush."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadtests.locust_load.records import Record, RecordsWriter, records_path

CREATE = Record("order_create", intended=10.0, sent=10.5, end=12.25, status=201,
                key="k-1", attempt=2, id=7)  # fmt: skip
FAILED = Record("tips", intended=11.0, sent=11.0, end=21.0, status=0, error="ConnectionError: x")


def test_a_record_is_the_contracts_json_line() -> None:
    """Latency runs from the intended send time, not from the actual one."""
    assert json.loads(CREATE.line()) == {
        "endpoint": "order_create", "intended": 10.0, "sent": 10.5, "end": 12.25,
        "latency": 2.25, "status": 201, "error": None, "key": "k-1", "attempt": 2, "id": 7,
    }  # fmt: skip
    assert json.loads(FAILED.line())["error"] == "ConnectionError: x"


def test_records_reach_the_file_at_flush_not_before(tmp_path: Path) -> None:
    writer = RecordsWriter(tmp_path / "records" / "host-1.jsonl")
    writer.open()
    writer.add(CREATE)
    assert writer.path.read_text() == ""
    writer.flush()
    writer.add(FAILED)
    writer.close()  # flushes what is left
    lines = writer.path.read_text().splitlines()
    assert [json.loads(line)["endpoint"] for line in lines] == ["order_create", "tips"]


def test_a_reopened_file_is_appended_to(tmp_path: Path) -> None:
    for record in (CREATE, FAILED):
        writer = RecordsWriter(tmp_path / "r.jsonl")
        writer.open()
        writer.add(record)
        writer.close()
    assert len((tmp_path / "r.jsonl").read_text().splitlines()) == 2


def test_flushing_a_writer_never_opened_names_its_file(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match=r"records file .*r\.jsonl is not open"):
        RecordsWriter(tmp_path / "r.jsonl").flush()


def test_each_process_writes_its_own_file() -> None:
    assert records_path(Path("/r"), host="web-1", pid=42) == Path("/r/web-1-42.jsonl")
    assert records_path(Path("/r")).suffix == ".jsonl"
