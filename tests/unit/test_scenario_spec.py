"""Scenario files: parsed into dataclasses, every mistake reported with its file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtests.scenario import spec
from loadtests.scenario.spec import (
    ErrorSlo,
    Fault,
    Invariants,
    LatencySlo,
    Load,
    RecoverySlo,
    SpecError,
    Stage,
    System,
)

SCENARIOS = spec.SHIPPED

VALID = """\
name = "outage"
description = "The upstream goes down for ten seconds"

[load]
users = 20
start_rate = 10
stages = [{duration = 5, rate = 40}, {duration = 30, rate = 40}]
mix = {tips = 5, order_create = 2, order_read = 3, report_create = 1, report_poll = 1}
request_timeout = 5

[system]
web_workers = 3
env = {UPSTREAM_TIMEOUT = "1"}
broker = "rabbitmq"

[[faults]]
name = "upstream down"
kind = "upstream_mode"
target = "upstream"
start = 10
duration = 10
params = {mode = "error", status = 503}

[[faults]]
start = 25
duration = 5
kind = "toxic"
target = "primary"
params = {type = "latency", attributes = {latency = 500, jitter = 50}}

[[slo]]
endpoint = "tips"
phase = "before"
max_error_rate = 0.0
p99 = 0.5

[[slo]]
endpoint = "*"
phase = "during:upstream down"
max_error_rate = 0.5
error_statuses = [0, 500, 502, 504]

[[slo]]
kind = "recovery"
fault = "upstream down"
max_seconds = 5

[invariants]
orders_lost = 0
orders_phantom = 2
"""


# The second fault's kind, target and params, to swap for another kind's.
TOXIC = (
    'kind = "toxic"\ntarget = "primary"\n'
    'params = {type = "latency", attributes = {latency = 500, jitter = 50}}'
)


def write(directory: Path, text: str, name: str = "sc.toml") -> Path:
    path = directory / name
    path.write_text(text)
    return path


def edited(old: str, new: str) -> str:
    assert VALID.count(old) == 1, f"the edit must match once: {old!r}"
    return VALID.replace(old, new)


def test_a_valid_file_reads_into_dataclasses(tmp_path: Path) -> None:
    """Every section of a valid file lands in its frozen dataclass, unscaled."""
    scenario = spec.load_scenario(write(tmp_path, VALID))

    assert (scenario.name, scenario.description) == (
        "outage",
        "The upstream goes down for ten seconds",
    )
    assert scenario.load == Load(
        users=20,
        start_rate=10,
        stages=(Stage(5, 40), Stage(30, 40)),
        mix={"tips": 5, "order_create": 2, "order_read": 3, "report_create": 1, "report_poll": 1},
        request_timeout=5,
    )
    assert scenario.duration == 35
    assert scenario.system == System(3, {"UPSTREAM_TIMEOUT": "1"}, "rabbitmq")
    assert scenario.faults == (
        Fault(
            "upstream down", "upstream_mode", "upstream", 10, 10, {"mode": "error", "status": 503}
        ),
        Fault(
            "toxic primary",
            "toxic",
            "primary",
            25,
            5,
            {
                "type": "latency",
                "stream": "downstream",
                "toxicity": 1.0,
                "attributes": {"latency": 500, "jitter": 50},
            },
        ),
    )
    assert scenario.slos == (
        ErrorSlo("tips", "before", 0.0),
        LatencySlo("tips", "before", 0.5),
        ErrorSlo("*", "during:upstream down", 0.5, (0, 500, 502, 504)),
        RecoverySlo("upstream down", "*", 0.0, 5, window=3),
    )
    assert scenario.invariants == Invariants(orders_lost=0, orders_phantom=2, reports_lost=0)
    assert scenario.invariants.limits() == {
        "orders_lost": 0,
        "orders_phantom": 2,
        "reports_lost": 0,
    }
    assert scenario.scale == 1


def test_defaults_fill_what_a_minimal_file_leaves_out(tmp_path: Path) -> None:
    """Name from the file stem, the default mix and system, no faults or SLOs, zero limits."""
    text = 'description = "d"\n[load]\nusers = 1\nstages = [{duration = 1, rate = 1}]\n'
    scenario = spec.load_scenario(write(tmp_path, text, "tiny.toml"))

    assert scenario.name == "tiny"
    assert scenario.load.mix == spec.DEFAULT_MIX
    assert (scenario.load.start_rate, scenario.load.request_timeout) == (0, 10)
    assert scenario.system == System()
    assert (scenario.faults, scenario.slos, scenario.invariants) == ((), (), Invariants())


def test_scale_multiplies_times_but_not_rates_or_latency_limits(tmp_path: Path) -> None:
    """--scale shortens stages, fault times and recovery bounds; rates and p99 stay."""
    scenario = spec.load_scenario(write(tmp_path, VALID), scale=0.5)

    assert scenario.scale == 0.5
    assert scenario.load.stages == (Stage(2.5, 40), Stage(15, 40))
    assert (scenario.load.start_rate, scenario.load.request_timeout) == (10, 5)
    assert [(f.start, f.duration) for f in scenario.faults] == [(5, 5), (12.5, 2.5)]
    recovery = scenario.slos[-1]
    assert isinstance(recovery, RecoverySlo)
    assert (recovery.max_seconds, recovery.window) == (2.5, 1.5)
    assert scenario.slos[1] == LatencySlo("tips", "before", 0.5)


def test_a_surge_names_a_window_and_a_p99_may_read_some_statuses(tmp_path: Path) -> None:
    """The shipped overload: a `surge` fault (nothing done to the system), SLOs on its
    phase with `p99_statuses`, and a recovery after it."""
    scenario = spec.load_scenario(spec.SHIPPED / "overload.toml")

    surge = scenario.fault("surge")
    assert (surge.kind, surge.start, surge.duration) == ("surge", 10, 21)
    assert LatencySlo("order_read", "during:surge", 0.5, (200,)) in scenario.slos
    assert LatencySlo("order_read", "during:surge", 1.5, (503,)) in scenario.slos
    assert scenario.system.web_workers == 1
    assert max(stage.rate for stage in scenario.load.stages) == 200


def test_locust_args_follow_the_locustfile_options(tmp_path: Path) -> None:
    """Users, spawn rate, run time, the rate stages, the mix and the timeout as CLI arguments."""
    scenario = spec.load_scenario(write(tmp_path, VALID), scale=0.5)

    assert spec.locust_args(scenario.load) == [
        *("-u", "20", "-r", "20", "-t", "18s"),
        *("--start-rate", "10", "--stages", "2.5:40,15:40"),
        *("--mix", "tips=5,order_create=2,order_read=3,report_create=1,report_poll=1"),
        *("--request-timeout", "5"),
    ]


def test_the_scheduled_rate_ramps_linearly_between_stages() -> None:
    """rate_at follows the stages: a ramp from the start rate, then the plateau."""
    load = Load(users=1, start_rate=10, stages=(Stage(10, 30), Stage(10, 30)), mix={"tips": 1})

    assert [load.rate_at(t) for t in (0, 5, 10, 15, 25)] == [10, 20, 30, 30, 30]


BAD = [
    (
        "{duration = 30, rate = 40}]",
        '{duration = 30, rate = "fast"}]',
        'load.stages[1].rate: must be a number >= 0, got "fast"',
    ),
    (
        "{duration = 30, rate = 40}]",
        "{duration = 30, rate = -1}]",
        "load.stages[1].rate: must be a number >= 0, got -1",
    ),
    (
        "{duration = 5, rate = 40}",
        "{duration = 0, rate = 40}",
        "load.stages[0].duration: must be a number > 0, got 0",
    ),
    (
        "{duration = 5, rate = 40}",
        "{duration = 5, rate = 40, ramp = 1}",
        "load.stages[0].ramp: unknown key (known: duration, rate)",
    ),
    (
        "stages = [{duration = 5, rate = 40}, {duration = 30, rate = 40}]",
        "stages = []",
        "load.stages: must have at least one stage",
    ),
    ("users = 20", "users = true", "load.users: must be an integer >= 1, got true"),
    ("users = 20", "users = 2.5", "load.users: must be an integer >= 1, got 2.5"),
    ("users = 20", "usres = 20", "load.usres: unknown key (did you mean users?)"),
    ("[invariants]", "[invariant]", "invariant: unknown key (did you mean invariants?)"),
    (
        "orders_lost = 0",
        "orders_lost = -1",
        "invariants.orders_lost: must be an integer >= 0, got -1",
    ),
    (
        "orders_lost = 0",
        "orders_lost = 0\nmax_extra_upstream_calls = -0.1",
        "invariants.max_extra_upstream_calls: must be a number >= 0, got -0.1",
    ),
    ('description = "The upstream goes down for ten seconds"\n', "", "description: is required"),
    (
        "mix = {tips = 5, order_create = 2, order_read = 3, report_create = 1, report_poll = 1}",
        "mix = {}",
        "load.mix: weights must have a positive sum, got {}",
    ),
    (
        "mix = {tips = 5, order_create = 2, order_read = 3, report_create = 1, report_poll = 1}",
        "mix = {tips = 0}",
        'load.mix: weights must have a positive sum, got {"tips": 0}',
    ),
    (
        "tips = 5, order_create",
        "tips = -5, order_create",
        "load.mix.tips: must be a number >= 0, got -5",
    ),
    (
        "tips = 5, order_create",
        "tip = 5, order_create",
        "load.mix.tip: unknown key (did you mean tips?)",
    ),
    (
        'UPSTREAM_TIMEOUT = "1"',
        "UPSTREAM_TIMEOUT = 1",
        "system.env.UPSTREAM_TIMEOUT: must be a non-empty string, got 1",
    ),
    (
        'broker = "rabbitmq"',
        'broker = "kafka"',
        'system.broker: unknown broker "kafka" (one of: redis, rabbitmq)',
    ),
    (
        'kind = "toxic"',
        'kind = "explode"',
        'faults[1].kind: unknown fault kind "explode" (one of: toxic, kill, pause, stop,'
        " switchover, promote, pause_replay, terminate_backends, upstream_mode, proxy_down,"
        " kill_instance, rolling_restart, surge)",
    ),
    (
        'kind = "toxic"\ntarget = "primary"',
        'kind = "toxic"\ntarget = "db"',
        'faults[1].target: unknown target "db" (one of: primary, replica, redis, broker, upstream,'
        " web, worker, relay, leader)",
    ),
    (
        'kind = "toxic"\ntarget = "primary"',
        'kind = "promote"\ntarget = "primary"',
        'faults[1].target: kind "promote" cannot target "primary" (one of: replica)',
    ),
    (
        'kind = "toxic"\ntarget = "primary"',
        'kind = "toxic"\ntarget = "web"',
        'faults[1].target: kind "toxic" cannot target "web"'
        " (one of: primary, replica, redis, broker, upstream)",
    ),
    (
        'kind = "toxic"\ntarget = "primary"',
        'kind = "pause_replay"\ntarget = "redis"',
        'faults[1].target: kind "pause_replay" cannot target "redis" (one of: replica)',
    ),
    ("start = 25", "start = 40", "faults[1].start: 40 s is not inside the run (0 to 35 s)"),
    (
        "start = 25\nduration = 5",
        "start = 25\nduration = 15",
        "faults[1].duration: the fault ends at 40 s, after the run ends (35 s)",
    ),
    ("start = 25", 'start = "soon"', 'faults[1].start: must be a number >= 0, got "soon"'),
    (
        'name = "upstream down"\n',
        'name = "upstream down"\nwhen = 3\n',
        "faults[0].when: unknown key (known: name, kind, target, start, duration, params)",
    ),
    (
        'kind = "toxic"\n',
        'name = "upstream down"\nkind = "toxic"\n',
        'faults[1].name: "upstream down" names two faults (names must differ)',
    ),
    (
        'mode = "error"',
        'mode = "broken"',
        'faults[0].params.mode: unknown upstream mode "broken"'
        " (one of: normal, slow, tail, error, hang, refuse, oversized, garbage)",
    ),
    (
        'params = {mode = "error", status = 503}',
        "params = {status = 503}",
        "faults[0].params.mode: is required",
    ),
    (
        'params = {mode = "error", status = 503}',
        'params = {mode = "slow", delay = 5}',
        "faults[0].params.delay: unknown key (did you mean delay_ms?)",
    ),
    (
        "attributes = {",
        "atributes = {",
        "faults[1].params.atributes: unknown key (did you mean attributes?)",
    ),
    (
        'type = "latency"',
        'type = "lag"',
        'faults[1].params.type: unknown toxic type "lag"'
        " (one of: latency, bandwidth, slow_close, timeout, reset_peer, slicer, limit_data)",
    ),
    (
        "latency = 500",
        "latency = -500",
        "faults[1].params.attributes.latency: must be an integer >= 0, got -500",
    ),
    (
        'phase = "during:upstream down"',
        'phase = "during:redis down"',
        'slo[1].phase: no fault named "redis down" (faults: "upstream down", "toxic primary")',
    ),
    (
        'phase = "before"',
        'phase = "midway"',
        'slo[0].phase: must be "all", "before", "during:<fault name>" or "after:<fault name>",'
        ' got "midway"',
    ),
    (
        'fault = "upstream down"',
        'fault = "nope"',
        'slo[2].fault: no fault named "nope" (faults: "upstream down", "toxic primary")',
    ),
    (
        TOXIC,
        'kind = "kill_instance"\ntarget = "web"',
        'faults[1].kind: kind "kill_instance" needs system.instances >= 2 (HAProxy in front)',
    ),
    (
        TOXIC,
        'kind = "rolling_restart"\ntarget = "primary"',
        'faults[1].target: kind "rolling_restart" cannot target "primary" (one of: web)',
    ),
    (
        'endpoint = "tips"',
        'endpoint = "orders"',
        'slo[0].endpoint: unknown endpoint "orders"'
        " (one of: *, tips, order_create, order_read, report_create, report_poll, reads,"
        " idempotent_writes, other_writes)",
    ),
    (
        "max_error_rate = 0.5",
        "max_error_rate = 1.5",
        "slo[1].max_error_rate: must be a number >= 0 and <= 1, got 1.5",
    ),
    ("max_error_rate = 0.5\n", "", "slo[1].max_error_rate: is required (or p99, or both)"),
    ("p99 = 0.5", "p99 = 0", "slo[0].p99: must be a number > 0, got 0"),
    ("p99 = 0.5", "p90 = 0.5", "slo[0].p90: unknown key (did you mean p99?)"),
    (
        "[0, 500, 502, 504]",
        "[0, 700]",
        "slo[1].error_statuses[1]: must be an HTTP status (0 to 599), got 700",
    ),
    (
        'kind = "recovery"',
        'kind = "recover"',
        'slo[2].kind: unknown slo kind "recover" (one of: recovery, first_write)',
    ),
    (
        "max_seconds = 5",
        "max_seconds = 5\nwindow = 0",
        "slo[2].window: must be a number > 0, got 0",
    ),
    (
        "start = 10\nduration = 10",
        "start = 10\nduration = -1",
        "faults[0].duration: must be a number >= 0, got -1",
    ),
    (
        TOXIC,
        'kind = "kill"\ntarget = "primary"\nparams = {restart = false, type = "latency"}',
        "faults[1].params.type: unknown key (known: processes, restart)",
    ),
    (
        TOXIC,
        'kind = "kill"\ntarget = "primary"\nparams = {restart = "no"}',
        'faults[1].params.restart: must be true or false, got "no"',
    ),
    (
        TOXIC,
        'kind = "terminate_backends"\ntarget = "primary"\nparams = {count = 0}',
        "faults[1].params.count: must be an integer >= 1, got 0",
    ),
    (
        TOXIC,
        'kind = "promote"\ntarget = "replica"\nparams = {restart = false}',
        "faults[1].params.restart: unknown key",
    ),
    (
        'broker = "rabbitmq"',
        'broker = "rabbitmq"\nsynchronous_commit = "off"',
        'system.synchronous_commit: unknown level "off" (one of: local, on, remote_apply)',
    ),
    (
        'broker = "rabbitmq"',
        'broker = "rabbitmq"\nha = "raft"',
        'system.ha: unknown mode "raft" (one of: none, patroni)',
    ),
    (TOXIC, 'kind = "kill"\ntarget = "leader"', 'system: a fault on "leader" needs ha = "patroni"'),
    (
        TOXIC,
        'kind = "switchover"\ntarget = "primary"',
        'faults[1].target: kind "switchover" cannot target "primary" (one of: leader)',
    ),
    (
        'kind = "recovery"\nfault = "upstream down"',
        'kind = "first_write"\nfault = "upstream gone"',
        'slo[2].fault: no fault named "upstream gone"',
    ),
]


@pytest.mark.parametrize(
    ("old", "new", "message"),
    BAD,
    ids=[case[2].split(":")[0] + f"-{i}" for i, case in enumerate(BAD)],
)
def test_a_mistake_names_the_file_the_key_and_the_problem(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    """Each class of bad input is refused with the file, the key path and what is wrong."""
    with pytest.raises(SpecError) as caught:
        spec.load_scenario(write(tmp_path, edited(old, new)))

    assert str(caught.value).startswith(f"sc.toml: {message}")


def test_a_tail_mode_and_an_extra_calls_limit_read(tmp_path: Path) -> None:
    """The upstream's `tail` settings pass through; the extra upstream calls' limit is read
    apart from the limits on the data."""
    text = edited("params = {mode = \"error\", status = 503}",
                  "params = {mode = \"tail\", delay_ms = 50, jitter_ms = 10, tail_ms = 500, "
                  "tail_every = 50}")  # fmt: skip
    text = text.replace("orders_phantom = 2", "orders_phantom = 2\nmax_extra_upstream_calls = 0.1")
    scenario = spec.load_scenario(write(tmp_path, text))
    assert scenario.fault("upstream down").params == {
        "mode": "tail", "delay_ms": 50, "jitter_ms": 10, "tail_ms": 500, "tail_every": 50,
    }  # fmt: skip
    assert scenario.invariants.max_extra_upstream_calls == 0.1
    assert "max_extra_upstream_calls" not in scenario.invariants.limits()


def test_an_after_phase_needs_a_fault_that_ends(tmp_path: Path) -> None:
    """A fault undone only at the end of the run has no "after" to measure."""
    text = edited("start = 25\nduration = 5\n", "start = 25\n").replace(
        'phase = "before"', 'phase = "after:toxic primary"'
    )

    with pytest.raises(SpecError, match=r'slo\[0\]\.phase: fault "toxic primary" lasts to the end'):
        spec.load_scenario(write(tmp_path, text))


def test_an_instance_fault_names_an_instance_behind_the_balancer(tmp_path: Path) -> None:
    """`system.instances` puts HAProxy in front; `kill_instance` must name one of them."""
    text = edited("web_workers = 3\n", "web_workers = 1\ninstances = 2\n").replace(
        TOXIC, 'kind = "kill_instance"\ntarget = "web"\nparams = {instance = 2}'
    )
    scenario = spec.load_scenario(write(tmp_path, text))
    assert (scenario.system.instances, scenario.system.web_workers) == (2, 1)
    assert scenario.faults[1].params == {"instance": 2}

    with pytest.raises(SpecError, match=r"faults\[1\]\.params\.instance: there are 2 instances"):
        spec.load_scenario(write(tmp_path, text.replace("instance = 2}", "instance = 3}")))


def test_a_fault_without_duration_lasts_to_the_end(tmp_path: Path) -> None:
    """An omitted duration means the fault is undone when the run ends."""
    scenario = spec.load_scenario(
        write(tmp_path, edited("start = 25\nduration = 5\n", "start = 25\n"))
    )

    assert scenario.fault("toxic primary").end(scenario.duration) == 35


def test_the_error_carries_its_parts(tmp_path: Path) -> None:
    """SpecError keeps the file, key and problem as attributes for callers that reformat."""
    with pytest.raises(SpecError) as caught:
        spec.load_scenario(write(tmp_path, edited("users = 20", "users = 0")))

    assert (caught.value.file, caught.value.key, caught.value.problem) == (
        "sc.toml",
        "load.users",
        "must be an integer >= 1, got 0",
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("description = ", "sc.toml: invalid TOML: "),
        ('description = "two\\nlines"', "sc.toml: description: must be one line"),
        ('description = "d"\nload = 3', "sc.toml: load: must be a table, got 3"),
        (
            'description = "d"\nfaults = 3\n[load]\nusers = 1\nstages = [{duration = 1, rate = 1}]',
            "sc.toml: faults: must be an array of tables, got 3",
        ),
    ],
)
def test_a_broken_file_is_refused(tmp_path: Path, text: str, message: str) -> None:
    """Not TOML at all, or a description spanning lines."""
    with pytest.raises(SpecError) as caught:
        spec.load_scenario(write(tmp_path, text))

    assert str(caught.value).startswith(message)


def test_a_leader_fault_on_patroni_and_its_first_write_slo_read(tmp_path: Path) -> None:
    """target "leader" with ha = "patroni"; a first_write bound is not scaled (a TTL is not)."""
    text = edited(TOXIC, 'kind = "switchover"\ntarget = "leader"\nparams = {candidate = "pg-1"}')
    text = text.replace('broker = "rabbitmq"', 'broker = "rabbitmq"\nha = "patroni"')
    text = text.replace('kind = "recovery"\nfault = "upstream down"',
                        'kind = "first_write"\nfault = "upstream down"')  # fmt: skip

    scenario = spec.load_scenario(write(tmp_path, text), scale=0.5)

    assert scenario.faults[1].params == {"candidate": "pg-1"}
    assert scenario.slos[-1] == spec.FirstWriteSlo("upstream down", 5.0)


def test_a_scale_below_the_scenarios_minimum_is_refused(tmp_path: Path) -> None:
    """A Patroni failover needs its TTL: a scenario says how far it can be shortened."""
    path = write(tmp_path, "min_scale = 0.7\n" + VALID)

    with pytest.raises(SpecError, match=r"^sc\.toml: min_scale: --scale 0\.3 is below 0\.7"):
        spec.load_scenario(path, scale=0.3)
    assert spec.load_scenario(path, scale=0.7).min_scale == 0.7


def test_a_missing_file_and_a_bad_scale_are_refused(tmp_path: Path) -> None:
    """Both fail before anything is read."""
    with pytest.raises(SpecError, match=r"^gone\.toml: no such file$"):
        spec.load_scenario(tmp_path / "gone.toml")
    with pytest.raises(SpecError, match=r"^sc\.toml: scale must be a number > 0, got 0$"):
        spec.load_scenario(write(tmp_path, VALID), scale=0)


def test_scenarios_are_listed_and_resolved_by_name_or_path(tmp_path: Path) -> None:
    """Names are file stems; an unknown name lists the known ones."""
    write(tmp_path, VALID, "outage.toml")
    write(
        tmp_path,
        'description = "d"\n[load]\nusers = 1\nstages = [{duration = 1, rate = 1}]\n',
        "a.toml",
    )
    write(tmp_path, "description = 3", "broken.toml")

    listed = spec.list_scenarios(tmp_path)

    assert [name for name, _ in listed] == ["a", "broken", "outage"]
    assert listed[0][1] == "d"
    assert listed[1][1].startswith("(invalid: broken.toml: description: must be a non-empty string")
    assert spec.resolve("outage", tmp_path) == tmp_path / "outage.toml"
    assert spec.resolve(tmp_path / "a.toml", Path("/nonexistent")) == tmp_path / "a.toml"
    with pytest.raises(
        SpecError, match=r"^nope: no such scenario file or name \(known: a, broken, outage\)$"
    ):
        spec.resolve("nope", tmp_path)


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.toml")), ids=lambda path: path.stem)
def test_every_shipped_scenario_is_valid(path: Path) -> None:
    """The scenarios in loadtests/scenario/shipped/ load, at full length and scaled down."""
    scenario = spec.load_scenario(path, scale=max(0.2, spec.load_scenario(path).min_scale))

    assert scenario.description
    assert spec.locust_args(scenario.load)
