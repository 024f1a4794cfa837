"""The API holds to its OpenAPI document: schemathesis, the real client, fuzzes the live
service from `/api/openapi.json` (every operation, and the links from a create to its read),
and finds no 5xx and no answer that breaks the document. The seed is fixed: a failure
replays with the command it prints."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from devstack.stack import Stack
from tests.helpers import forget_reports
from tests.servers import WebServer, run_web

pytestmark = pytest.mark.integration

SEED = 20261207
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
# What must hold for every answer. Left out: positive_data_acceptance, which takes any
# schema-valid request to deserve a 2xx, but the API refuses some on purpose: a reused
# Idempotency-Key with another body (422, per the IETF draft) and a `since` that is not a
# date (the document says "ISO 8601", which no JSON Schema format captures exactly).
CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
          "response_headers_conformance,response_schema_conformance,negative_data_rejection,"
          "missing_required_header,unsupported_method,use_after_free,"
          "ensure_resource_availability")  # fmt: skip


@pytest.fixture(scope="module")
def web(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    with run_web(stack, tmp_path_factory.mktemp("web")) as server:
        yield server


def test_schemathesis_finds_no_server_error_and_no_answer_off_the_document(
    healthy_stack: Stack, web: WebServer, tmp_path: Path
) -> None:
    command = [
        str(SCHEMATHESIS), "run", f"{web.url}/api/openapi.json",
        "--checks", CHECKS, "--seed", str(SEED), "--max-examples", "25", "--workers", "1",
        "--generation-database", "none", "--no-color", "--output-sanitize", "false",
        "--request-timeout", "10", "--report", "junit", "--report-dir", str(tmp_path),
        "--header", f"Authorization: Bearer {web.api_key}",  # writes need a key
    ]  # fmt: skip
    with psycopg.connect(healthy_stack.services["primary"]["url"], autocommit=True) as conn:
        before = conn.execute("SELECT now()").fetchone()[0]
    # In the test's directory: schemathesis keeps a cache where it runs.
    run = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False,
                         cwd=tmp_path)  # fmt: skip
    # No relay runs here: the reports it made would leave the outbox backlog to later tests.
    with psycopg.connect(healthy_stack.services["primary"]["url"], autocommit=True) as conn:
        made = conn.execute("SELECT id::text FROM reports WHERE created_at >= %s", (before,))
        forget_reports(healthy_stack, [row[0] for row in made.fetchall()])
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    generated = re.search(r"(\d+) generated, (\d+) passed", run.stdout)
    assert generated is not None, run.stdout[-3000:]
    assert generated[1] == generated[2], run.stdout[-3000:]  # every case passed every check
    # Every operation was reached (but the document's own, which schemathesis leaves out),
    # and the stateful phase followed the links.
    paths = web.client.get("/api/openapi.json").json()["paths"]
    operations = sum(len(path) for path in paths.values())
    assert f"Tested: {operations - 1}" in run.stdout, run.stdout[-3000:]
    assert "✅ Stateful" in run.stdout, run.stdout[-3000:]


def test_the_docs_page_renders_the_document_from_packaged_files(
    healthy_stack: Stack, web: WebServer
) -> None:
    """Swagger UI from the installed package: the page, its script and styles are served
    here, and the page loads nothing from elsewhere (its CSP says 'self' only)."""
    page = web.client.get("/api/docs")
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources
    assert all(source.startswith("/api/docs/") for source in sources), sources
    for source in sources:
        asset = web.client.get(source)
        assert asset.status_code == 200, source
        assert asset.content
    bundle = web.client.get("/api/docs/swagger-ui-bundle.js")
    assert "SwaggerUIBundle" in bundle.text
    assert "/api/openapi.json" in web.client.get("/api/docs/start.js").text
    missing = web.client.get("/api/docs/../../settings.py")
    assert missing.status_code == 404
