"""Running the bench: rounds keep medians and peaks, progress shows on stderr, `--check` judges."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import pytest

from devstack.stack import Stack
from loadtests import __main__ as cli
from loadtests import cli_bench
from loadtests.bench import chart, plan, progress, report, suite
from loadtests.bench.generator import LoadResult
from loadtests.bench.generator.result import ERROR_KINDS, Latencies
from loadtests.bench.progress import Progress
from loadtests.bench.rounds import Rounds
from loadtests.bench.targets import Verdict


def result(requests: int) -> LoadResult:
    return LoadResult(requests, 1.0, {200: requests}, dict.fromkeys(ERROR_KINDS, 0),
                      Latencies(1.0, 2.0, 3.0, 4.0))  # fmt: skip


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_each_row_keeps_its_median_round_and_its_highest_peak() -> None:
    rounds = Rounds("part", 3)
    for (requests, peak), _ in zip(((300, 10), (100, 30), (200, 20)), rounds, strict=True):
        with rounds.turn("server") as turn:
            turn.add("row", result(requests), peak_rss=peak)

    median = rounds.medians()["row"]

    assert (median.result.requests, median.peak_rss) == (200, 30)
    assert rounds.rps_by_round() == {"row": [300, 100, 200]}


def test_progress_shows_part_server_round_and_rate_as_each_turn_ends() -> None:
    stream = io.StringIO()
    rounds = Rounds("http", 2, Progress(stream))
    for _ in rounds:
        with rounds.turn("async service") as turn:
            turn.add("async service", result(8412))

    assert stream.getvalue().splitlines() == [
        "bench http | async service | round 1/2 | 8,412 req/s",
        "bench http | async service | round 2/2 | 8,412 req/s",
    ]


def test_on_a_terminal_one_line_is_rewritten_from_start_to_rate() -> None:
    stream = Terminal()
    shown = Progress(stream)

    shown.show("data", "async service", "failover")
    shown.show("data", "async service", "failover", "10 reads")
    shown.clear()

    assert stream.getvalue() == (
        "\r\x1b[Kbench data | async service | failover | measuring"
        "\r\x1b[Kbench data | async service | failover | 10 reads\r\x1b[K"
    )


def test_silent_progress_writes_nothing() -> None:
    progress.SILENT.show("http", "x", "round 1/1", "1 req/s")  # no stream to write to


def fake_part(*verdicts: Verdict) -> suite.PartRun:
    def run(chosen: plan.Plan, shown: Progress, stack: Stack | None) -> report.Outcome:
        row = report.Row("server", "", result(10))
        return report.finish("fake", "fake part", [row], list(verdicts), plan=chosen,
                             settings={})  # fmt: skip

    return run


MET = Verdict("fast enough", 2.0, 1.5, "2.00x", ">= 1.5x", met=True)
MISSED = Verdict("fast enough", 1.0, 1.5, "1.00x", ">= 1.5x", met=False)


@pytest.fixture
def fake_parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, suite.PartRun]:
    """`bench`'s parts replaced by `parts[name]`, reports in tmp_path, no chart drawn."""
    monkeypatch.setattr(report, "REPORT_DIR", tmp_path)
    monkeypatch.setattr(chart, "draw", lambda path: path.with_suffix(".png"))
    parts: dict[str, suite.PartRun] = {}
    monkeypatch.setattr(suite, "PARTS", parts)
    return parts


@pytest.mark.parametrize(
    ("verdicts", "check", "status"),
    [((MET,), True, 0), ((MET, MISSED), False, 0), ((MET, MISSED), True, 1), ((), True, 0)],
)
def test_check_exits_1_only_when_asked_and_a_target_was_missed(
    fake_parts: dict[str, suite.PartRun],
    verdicts: tuple[Verdict, ...],
    check: bool,
    status: int,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake_parts["fake"] = fake_part(*verdicts)

    assert cli.main(["bench", *(["--check"] if check else [])]) == status

    assert "fake part" in capsys.readouterr().out


def test_the_run_ends_with_the_index_and_every_missed_target(
    fake_parts: dict[str, suite.PartRun], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_parts["fake"] = fake_part(MET, MISSED)

    suite.run([], plan.FULL)

    out = capsys.readouterr().out.splitlines()
    assert out[-3:] == [
        f"charts and tables: {tmp_path / 'index.html'}",
        "targets: 1 met, 1 MISSED",
        "  MISSED fake: fast enough 1.00x (target >= 1.5x)",
    ]
    assert "bench fake" in (tmp_path / "index.html").read_text()


def test_quick_takes_the_quick_plan_and_the_figures_given() -> None:
    quick = cli.parser().parse_args(["bench", "--quick", "--rounds", "2"])
    full = cli.parser().parse_args(["bench", "data"])

    assert quick.parts == []  # argparse's `choices` would refuse the empty list
    assert cli_bench.chosen_plan(quick) == dataclasses.replace(plan.QUICK, rounds=2)
    assert (full.parts, cli_bench.chosen_plan(full)) == (["data"], plan.FULL)


def test_an_unknown_part_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.parser().parse_args(["bench", "nope"])

    assert "no part 'nope'" in capsys.readouterr().err


def test_a_plan_refuses_what_cannot_be_measured() -> None:
    with pytest.raises(ValueError, match="rounds"):
        plan.Plan(rounds=0)
    with pytest.raises(ValueError, match="duration"):
        plan.Plan(duration=0)
