"""The HTTP header fields of rate limit decisions: `RateLimit-Policy`, `RateLimit`, `Retry-After`.

As draft-ietf-httpapi-ratelimit-headers-11 (23 May 2026) writes them, each a structured-field
List (RFC 9651) of items named by the policy, a String:

    RateLimit-Policy: "default";q=100;w=60     quota q per window w (whole seconds)
    RateLimit: "default";r=42;t=35             r available now, within an effective window t

The draft leaves the algorithm open; for a token bucket, `r` is the whole tokens left and
`t` the seconds until the bucket is full again (a client spending no more than `r` within
them is never refused: it regains tokens meanwhile). With nothing left (`r=0`), `t` is
the seconds until a token returns, the moment `Retry-After` names: its section 6 says
Retry-After SHOULD NOT point earlier than the end of the effective window, and its
example B.1.4 gives both the same moment. Delays are whole seconds, rounded up.
"""

from __future__ import annotations

import math

from resilience_async._token_bucket import RateLimitDecision, RateLimitPolicy


def rate_limit_headers(*decisions: RateLimitDecision) -> dict[str, str]:
    """The header fields that tell a client about `decisions` (one per policy checked).

    `RateLimit-Policy` lists each policy once and `RateLimit` each decision, in the order
    given; `Retry-After` comes when one was refused (the longest wait of those refused).
    """
    if not decisions:
        raise ValueError("rate_limit_headers needs at least one decision")
    policies = {decision.policy.name: decision.policy for decision in decisions}
    headers = {
        "RateLimit-Policy": ", ".join(_policy_item(policy) for policy in policies.values()),
        "RateLimit": ", ".join(_limit_item(decision) for decision in decisions),
    }
    refused = [decision.retry_after for decision in decisions if not decision.allowed]
    if refused:
        headers["Retry-After"] = str(_seconds(max(refused)))
    return headers


def _policy_item(policy: RateLimitPolicy) -> str:
    item = f'"{policy.name}";q={policy.limit}'
    if float(policy.window).is_integer():  # w has no sub-second form: left out, not rounded
        item += f";w={int(policy.window)}"
    return item


def _limit_item(decision: RateLimitDecision) -> str:
    until = decision.reset_after if decision.remaining > 0 else decision.retry_after
    return f'"{decision.policy.name}";r={decision.remaining};t={_seconds(until)}'


def _seconds(delay: float) -> int:
    """Whole seconds, rounded up (a microsecond's float noise is not a second more)."""
    return max(0, math.ceil(round(delay, 6)))
