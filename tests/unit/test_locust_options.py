"""The locustfile's options: defaults, clear errors naming the option, the load they make."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from loadtests.locust_load.mix import DEFAULT_MIX
from loadtests.locust_load.options import LoadOptions, OptionError, add_arguments
from loadtests.locust_load.pacing import Stage


def parse(*args: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="locust")
    add_arguments(parser)
    return parser.parse_args(args)


def test_defaults_are_one_request_a_second_per_user_and_no_records() -> None:
    options = parse()
    assert vars(options) == {
        "records_dir": None, "mix": DEFAULT_MIX, "start_rate": None, "stages": "",
        "user_rate": 1.0, "request_timeout": 10.0, "seed": None,
    }  # fmt: skip
    load = LoadOptions.from_namespace(options)
    assert not load.paced
    assert load.profile(users=8).rate(0) == 8


def test_parsed_values_stay_plain_for_locust_to_forward_to_workers() -> None:
    """Workers get the master's options through msgpack: strings and numbers only."""
    options = parse("--stages", "10:100,5:0", "--start-rate", "20", "--records-dir", "/tmp/r",
                    "--mix", "tips=1", "--seed", "3")  # fmt: skip
    assert (options.stages, options.start_rate, options.records_dir) == (
        "10:100,5:0",
        20.0,
        "/tmp/r",
    )
    load = LoadOptions.from_namespace(options)
    assert load.paced
    assert load.stages == (Stage(10, 100), Stage(5, 0))
    assert load.records_dir == Path("/tmp/r")
    assert load.seed == 3
    assert load.profile(users=50).count(10) == 600  # the users share the total rate


def test_a_start_rate_alone_is_a_constant_arrival_rate() -> None:
    load = LoadOptions.from_namespace(parse("--start-rate", "30"))
    assert load.paced
    assert load.profile(users=4).count(2) == 60


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--stages", "10:x"], "argument --stages: stage 1 '10:x' rate 'x' is not a number"),
        (["--mix", "tip=1"], "argument --mix: unknown endpoint 'tip'"),
        (["--start-rate", "-5"], "argument --start-rate: a rate must be >= 0 req/s"),
        (["--user-rate", "0"], "argument --user-rate: must be above 0, not '0'"),
        (["--request-timeout", "soon"], "argument --request-timeout: 'soon' is not a number"),
        (["--seed", "1.5"], "argument --seed: a seed must be an integer, not '1.5'"),
    ],
)
def test_a_bad_value_on_the_command_line_names_the_option(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        parse(*args)
    assert message in capsys.readouterr().err


def test_a_bad_value_from_the_web_ui_names_the_option() -> None:
    """The web UI sends text, unchecked by argparse: building the options checks it."""
    options = parse()
    options.user_rate = "2.5"
    assert LoadOptions.from_namespace(options).user_rate == 2.5
    options.stages = "10:100,oops"
    with pytest.raises(
        OptionError, match=r"^--stages: stage 2 'oops' is not duration_s:target_rate"
    ):
        LoadOptions.from_namespace(options)
