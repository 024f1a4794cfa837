"""The endpoint mix: parsed from `endpoint=weight` pairs, drawn in proportion."""

from __future__ import annotations

import random
import re
from collections import Counter

import pytest

from loadtests.locust_load.mix import DEFAULT_MIX, ENDPOINTS, Mix


def test_the_default_mix_weighs_every_endpoint() -> None:
    assert Mix.parse(DEFAULT_MIX).weights == {
        "tips": 5, "order_create": 2, "order_read": 3, "report_create": 1, "report_poll": 1,
    }  # fmt: skip


def test_endpoints_left_out_weigh_nothing_and_are_never_drawn() -> None:
    mix = Mix.parse(" tips = 1 , order_create=0")
    assert mix.weights == dict.fromkeys(ENDPOINTS, 0.0) | {"tips": 1.0}
    rng = random.Random(1)
    assert {mix.choose(rng) for _ in range(1000)} == {"tips"}


def test_draws_follow_the_weights() -> None:
    mix = Mix.parse(DEFAULT_MIX)
    rng = random.Random(7)
    drawn = Counter(mix.choose(rng) for _ in range(24_000))
    for endpoint, weight in mix.weights.items():
        assert drawn[endpoint] / 24_000 == pytest.approx(weight / 12, rel=0.08)


def test_the_same_seed_draws_the_same_sequence() -> None:
    mix = Mix.parse(DEFAULT_MIX)
    first, second = random.Random("7/3"), random.Random("7/3")
    assert [mix.choose(first) for _ in range(50)] == [mix.choose(second) for _ in range(50)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tip=1", "unknown endpoint 'tip' (known: tips, order_create, order_read, report_crea"),
        ("tips", "'tips' is not endpoint=weight"),
        ("tips=many", "weight of tips 'many' is not a number"),
        ("tips=-1", "weight of tips must be a finite number >= 0"),
        ("tips=nan", "weight of tips must be a finite number >= 0"),
        ("tips=1,tips=2", "tips is given twice"),
        ("tips=0", "at least one endpoint needs a weight above 0"),
        ("", "at least one endpoint needs a weight above 0"),
    ],
)
def test_a_bad_mix_says_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        Mix.parse(text)
