"""ResilientClient's body limit and unusable answers, against a real demo upstream process.

The upstream sends what a broken one would, for real, over loopback: 512 MiB answers with
and without a declared length, gzip bombs, half a JSON document, HTML. The client must stop
at its limit, drop the connection, let the breaker count the failure, and say why in the
log and the metrics, once a window, without quoting the body.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest
from prometheus_client import CollectorRegistry

from devstack.upstream import AsyncUpstreamControl
from resilience_async import (
    CircuitBreaker,
    CircuitOpenError,
    ResilientClient,
    ResponseTooLargeError,
    RetryPolicy,
    UnusableResponseError,
    is_server_failure,
)
from resilience_async.prometheus import Instruments, instrument
from tests.fix_upstream import until_idle
from tests.helpers import memory_kib, reset_peak_memory
from tests.servers import Upstream

pytestmark = pytest.mark.integration

LIMIT = 256 * 1024
HUGE = 512 * 1024 * 1024
BOMB = 128 * 1024 * 1024  # gzip-compressed to ~130 KiB: its declared length is under LIMIT
GROWTH_KIB = 32 * 1024  # what the test process's peak memory may grow by, at most


@pytest.fixture
async def client(own_upstream: Upstream) -> AsyncIterator[ResilientClient]:
    async with ResilientClient("tips", own_upstream.tips_url, timeout=2.0, max_body=LIMIT,
                               retry=RetryPolicy(attempts=1)) as built:  # fmt: skip
        yield built


async def too_large(client: ResilientClient) -> tuple[ResponseTooLargeError, int]:
    """The error a request raises, and how far the process's peak memory grew, KiB."""
    baseline = reset_peak_memory()
    with pytest.raises(ResponseTooLargeError) as raised:
        await client.request("GET", "/tips")
    return raised.value, memory_kib()["VmHWM"] - baseline


async def test_a_declared_length_past_the_limit_fails_before_the_body_is_read(
    client: ResilientClient, upstream_control: AsyncUpstreamControl
) -> None:
    """512 MiB declared, the body held back for a minute: the client fails on the headers
    alone (reading any of the body would have ended in its 2 s timeout), naming the sizes,
    and drops the connection, which ends the upstream's answer."""
    await upstream_control.set_mode("oversized", size=HUGE, delay_ms=60_000)
    error, _ = await too_large(client)
    assert (error.upstream, error.limit, error.declared, error.reason) == (
        "tips", LIMIT, HUGE, "too_large"
    )  # fmt: skip
    assert str(error) == (
        f"upstream 'tips' declared a body of {HUGE} bytes, past the limit of {LIMIT} bytes "
        "(attempts: 1)"
    )
    await until_idle(upstream_control)


async def test_a_head_request_is_not_judged_by_the_length_it_declares(
    client: ResilientClient, upstream_control: AsyncUpstreamControl
) -> None:
    """HEAD's Content-Length describes a body that is never sent: 512 MiB declared is fine."""
    await upstream_control.set_mode("oversized", size=HUGE, delay_ms=0)
    response = await client.request("HEAD", "/tips")
    assert (response.status_code, response.headers["Content-Length"]) == (200, str(HUGE))
    assert response.content == b""
    await until_idle(upstream_control)


async def test_a_chunked_body_fails_as_it_passes_the_limit(
    client: ResilientClient, upstream_control: AsyncUpstreamControl
) -> None:
    """512 MiB with no declared length: the client stops where it passes the limit, its
    memory never grows by the body, and the upstream's answer ends with the connection."""
    await upstream_control.set_mode("oversized", size=HUGE, chunked=True, delay_ms=0)
    error, growth = await too_large(client)
    assert (error.declared, error.encoding) == (None, None)
    assert growth < GROWTH_KIB
    assert (await until_idle(upstream_control))["responses"] == {"200": 1}


@pytest.mark.parametrize("chunked", [False, True])
async def test_a_gzip_bomb_fails_once_it_inflates_past_the_limit(
    client: ResilientClient, upstream_control: AsyncUpstreamControl, chunked: bool
) -> None:
    """128 MiB of JSON gzipped to ~130 KiB, under the limit on the wire: it inflates only
    to the limit, then fails, whether its length is declared or not."""
    await upstream_control.set_mode("oversized", size=BOMB, gzip=True, chunked=chunked, delay_ms=0)
    error, growth = await too_large(client)
    assert (error.declared, error.encoding) == (None, "gzip")
    assert "gzip body that decodes past the limit of 262144 bytes" in str(error)
    assert growth < GROWTH_KIB
    await until_idle(upstream_control)


@pytest.mark.parametrize("gzip", [False, True])
@pytest.mark.parametrize("chunked", [False, True])
async def test_a_body_of_exactly_the_limit_is_served_and_one_byte_more_is_not(
    client: ResilientClient, upstream_control: AsyncUpstreamControl, gzip: bool, chunked: bool
) -> None:
    """The limit is inclusive, counted on the decoded body: LIMIT bytes pass (decoded, its
    headers no longer claiming gzip), LIMIT + 1 fail."""
    await upstream_control.set_mode("oversized", size=LIMIT, gzip=gzip, chunked=chunked, delay_ms=0)
    response = await client.request("GET", "/tips")
    assert len(response.content) == LIMIT
    assert response.json()["tips"] == []
    assert "Content-Encoding" not in response.headers
    await upstream_control.set_mode(
        "oversized", size=LIMIT + 1, gzip=gzip, chunked=chunked, delay_ms=0
    )
    with pytest.raises(ResponseTooLargeError):
        await client.request("GET", "/tips")


async def test_a_connection_left_with_unread_body_is_never_reused(
    own_upstream: Upstream, upstream_control: AsyncUpstreamControl
) -> None:
    """One connection in the pool: after a 512 MiB answer was cut off, the next request
    gets the tips, not the rest of that body."""
    async with ResilientClient("tips", own_upstream.tips_url, max_connections=1, max_body=LIMIT,
                               retry=RetryPolicy(attempts=1)) as one:  # fmt: skip
        for chunked in (False, True):
            await upstream_control.set_mode("oversized", size=HUGE, chunked=chunked, delay_ms=0)
            with pytest.raises(ResponseTooLargeError):
                await one.get_json("/tips")
            await upstream_control.set_mode("normal")
            assert len((await one.get_json("/tips"))["tips"]) == 10


async def test_the_breaker_counts_a_too_large_answer_as_a_failure(
    own_upstream: Upstream, upstream_control: AsyncUpstreamControl
) -> None:
    """Three answers past the limit open a breaker of three failures: the fourth call is
    refused without reaching the upstream."""
    breaker = CircuitBreaker(name="tips", failure_threshold=3, failure_rate_threshold=None,
                             reset_timeout=30, result_is_failure=is_server_failure,
                             default_hooks=False)  # fmt: skip
    async with ResilientClient("tips", own_upstream.tips_url, max_body=LIMIT, breaker=breaker,
                               retry=RetryPolicy(attempts=1)) as guarded:  # fmt: skip
        await upstream_control.set_mode("oversized", size=HUGE, chunked=True, delay_ms=0)
        for _ in range(3):
            with pytest.raises(ResponseTooLargeError):
                await guarded.get_json("/tips")
        with pytest.raises(CircuitOpenError):
            await guarded.get_json("/tips")
    assert breaker.stats()["calls_failure"] == 3
    assert (await until_idle(upstream_control))["requests"] == 3


async def test_unusable_answers_are_counted_and_warned_of_once_a_window_per_reason(
    client: ResilientClient,
    upstream_control: AsyncUpstreamControl,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Three answers too large, three of bad JSON (truncated, HTML), one undecodable, one of
    the wrong shape (the caller's own verdict): each counted under its reason, in the client's
    stats and in Prometheus; one warning per reason, naming the upstream and the reason,
    never quoting the body."""
    registry = CollectorRegistry()
    instrument(client, instruments=Instruments(registry))
    caplog.set_level(logging.WARNING, logger="resilience_async.http")
    await upstream_control.set_mode("oversized", size=HUGE, delay_ms=0)
    for _ in range(3):
        with pytest.raises(ResponseTooLargeError):
            await client.get_json("/tips")
    for garbage in ("truncated_json", "html", "truncated_json", "bad_gzip"):
        await upstream_control.set_mode("garbage", garbage=garbage)
        with pytest.raises(UnusableResponseError):
            await client.get_json("/tips")
    await upstream_control.set_mode("garbage", garbage="wrong_shape")
    assert await client.get_json("/tips") == {"tips": "none today"}
    with pytest.raises(UnusableResponseError):
        raise client.unusable("wrong_shape", "answered JSON without a list of tips")

    counts = {"too_large": 3, "malformed_json": 3, "bad_encoding": 1, "wrong_shape": 1}
    assert client.stats()["unusable"] == counts
    exported = {reason: registry.get_sample_value("upstream_unusable_responses_total",
                                                  {"upstream": "tips", "reason": reason})
                for reason in counts}  # fmt: skip
    assert exported == counts
    warnings = [(r.levelno, r.upstream, r.reason) for r in caplog.records]  # type: ignore[attr-defined]
    assert warnings == [(logging.WARNING, "tips", reason) for reason in counts]
    logged = caplog.text
    for reason in counts:
        assert f"upstream 'tips' answered unusably ({reason})" in logged
    assert "Set a time" not in logged
    assert "doctype" not in logged
    assert "none today" not in logged
