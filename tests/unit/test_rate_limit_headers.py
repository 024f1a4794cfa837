"""`rate_limit_headers` writes the IETF fields as draft-ietf-httpapi-ratelimit-headers-11 does:
each expectation below is one of the draft's own examples (section, or appendix)."""

from __future__ import annotations

from typing import Any

import pytest

from resilience_async import (
    RateLimitDecision,
    RateLimiter,
    RateLimitPolicy,
    rate_limit_headers,
)
from tests.fakes import FakeClock


def decision(policy: RateLimitPolicy, **fields: Any) -> RateLimitDecision:
    base: dict[str, Any] = {
        "allowed": True, "remaining": 0, "retry_after": 0.0, "reset_after": 0.0, "shared": True,
    }  # fmt: skip
    return RateLimitDecision(policy=policy, **(base | fields))


def test_one_policy_and_its_service_limit() -> None:
    """3.2 and 4.2: `"default";q=100;w=10`, and `"default";r=50;t=30`."""
    allowed = decision(RateLimitPolicy("default", 100, 10), remaining=50, reset_after=30)
    assert rate_limit_headers(allowed) == {
        "RateLimit-Policy": '"default";q=100;w=10',
        "RateLimit": '"default";r=50;t=30',
    }


def test_a_window_with_quota_left_is_the_time_until_the_bucket_is_full() -> None:
    """B.2.1: `"fixedwindow";r=99;t=50` under `"fixedwindow";q=100;w=60`."""
    policy = RateLimitPolicy("fixedwindow", limit=100, window=60)
    allowed = decision(policy, remaining=99, reset_after=49.4, retry_after=0.0)
    assert rate_limit_headers(allowed) == {
        "RateLimit-Policy": '"fixedwindow";q=100;w=60',
        "RateLimit": '"fixedwindow";r=99;t=50',
    }


def test_a_refusal_says_when_to_retry_and_the_window_ends_then_too() -> None:
    """B.1.4: Retry-After and `"default";r=0;t=5` name the same moment (section 6: it
    SHOULD NOT be earlier than the end of the effective window)."""
    refused = decision(
        RateLimitPolicy("default", limit=12, window=60),
        allowed=False, remaining=0, retry_after=4.2, reset_after=59.2,
    )  # fmt: skip
    headers = rate_limit_headers(refused)
    assert headers["RateLimit"] == '"default";r=0;t=5'
    assert headers["Retry-After"] == "5"


def test_several_policies_are_listed_in_order() -> None:
    """3.2 and B.3.1: `"permin";q=50;w=60, "perhr";q=1000;w=3600` (the list separator as
    RFC 9651 serializes it: a comma and a space), one service limit per decision."""
    per_minute = RateLimitPolicy("permin", limit=50, window=60)
    per_hour = RateLimitPolicy("perhr", limit=1000, window=3600)
    headers = rate_limit_headers(
        decision(per_minute, remaining=49, reset_after=1.2),
        decision(per_hour, remaining=100, reset_after=36000),
    )
    assert headers == {
        "RateLimit-Policy": '"permin";q=50;w=60, "perhr";q=1000;w=3600',
        "RateLimit": '"permin";r=49;t=2, "perhr";r=100;t=36000',
    }


def test_retry_after_is_the_longest_wait_of_the_refusals() -> None:
    per_key = RateLimitPolicy("key", limit=10, window=60)
    per_address = RateLimitPolicy("addr", limit=100, window=60)
    headers = rate_limit_headers(
        decision(per_key, allowed=False, retry_after=6, reset_after=60),
        decision(per_address, allowed=False, retry_after=0.6, reset_after=59.4),
        decision(per_key, remaining=3, reset_after=42),
    )
    assert headers["Retry-After"] == "6"
    assert headers["RateLimit-Policy"] == '"key";q=10;w=60, "addr";q=100;w=60'


def test_a_window_of_a_fraction_of_a_second_is_not_advertised() -> None:
    """3.1.3: w is whole seconds, "sub-second precision is not supported": left out, not
    rounded into another policy."""
    policy = RateLimitPolicy("fast", limit=5, window=0.5)
    assert rate_limit_headers(decision(policy, remaining=4, reset_after=0.1)) == {
        "RateLimit-Policy": '"fast";q=5',
        "RateLimit": '"fast";r=4;t=1',
    }


@pytest.mark.parametrize(
    ("seconds", "written"), [(30.0, 30), (29.2, 30), (30.0000001, 30), (0.000001, 1)]
)
def test_delays_are_whole_seconds_rounded_up(seconds: float, written: int) -> None:
    """delay-seconds; a rounding error far below a microsecond is not a second more."""
    policy = RateLimitPolicy("default", limit=100, window=60)
    headers = rate_limit_headers(decision(policy, allowed=False, retry_after=seconds))
    assert headers["RateLimit"] == f'"default";r=0;t={written}'
    assert headers["Retry-After"] == str(written)


def test_no_decision_is_a_mistake() -> None:
    with pytest.raises(ValueError, match="at least one decision"):
        rate_limit_headers()


async def test_a_limiter_decisions_headers_agree_with_each_other() -> None:
    """Draining a bucket: r counts down, t grows to the full window, then the refusal's
    Retry-After and t are one interval."""
    limiter = RateLimiter(redis=None, clock=FakeClock())
    policy = RateLimitPolicy("default", limit=3, window=30)
    seen = [rate_limit_headers(await limiter.acquire("a", policy)) for _ in range(4)]
    assert [h["RateLimit"] for h in seen] == [
        '"default";r=2;t=10',
        '"default";r=1;t=20',
        '"default";r=0;t=10',
        '"default";r=0;t=10',
    ]
    assert [h.get("Retry-After") for h in seen] == [None, None, None, "10"]
    assert {h["RateLimit-Policy"] for h in seen} == {'"default";q=3;w=30'}
