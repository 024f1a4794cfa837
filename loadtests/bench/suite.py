"""`python -m loadtests bench`: run the parts, print their tables, draw, index, judge.

Each part prints its table with its verdicts; its JSON gets a chart beside it, and the
directory an `index.html` over every part found there. With `check`, a missed target makes
the exit status 1. A quick run shares one stack among its parts (`bench data` last: its
failover leaves the stack without a primary of its own making).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from devstack.stack import Stack
from loadtests.bench import chart, collateral, data, http, index, jobs, outbound, scale
from loadtests.bench.plan import Plan
from loadtests.bench.progress import SILENT, Progress
from loadtests.bench.report import Outcome
from loadtests.bench.transport import part as transport

PartRun = Callable[[Plan, Progress, Stack | None], Outcome]
PARTS: dict[str, PartRun] = {
    "http": http.run,
    "outbound": outbound.run,
    "transport": transport.run,
    "jobs": jobs.run,
    "collateral": collateral.run,
    "scale": scale.run,
    "data": data.run,  # last: see above
}


def run(parts: Sequence[str], plan: Plan, *, check: bool = False,
        progress: Progress = SILENT) -> int:  # fmt: skip
    """Run `parts` (every part when empty) in the order of `PARTS`; the exit status."""
    chosen = [part for part in PARTS if part in parts] if parts else list(PARTS)
    outcomes = []
    with _shared(plan) as stack:
        for part in chosen:
            outcome = PARTS[part](plan, progress, stack)
            chart.draw(outcome.path)
            progress.clear()
            print(f"{outcome.text}\n", flush=True)
            outcomes.append(outcome)
    page = index.write(outcomes[0].path.parent, list(PARTS))
    print(f"charts and tables: {page}")
    print(summary(outcomes))
    return 1 if check and any(outcome.missed for outcome in outcomes) else 0


@contextlib.contextmanager
def _shared(plan: Plan) -> Iterator[Stack | None]:
    """One stack for every part of a quick run; None (each part its own) otherwise."""
    if not plan.quick:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="bench-stack-") as scratch, \
            Stack(state_dir=Path(scratch)) as stack:  # fmt: skip
        yield stack


def summary(outcomes: Sequence[Outcome]) -> str:
    """One line of counts, then a line per missed target."""
    verdicts = [v for outcome in outcomes for v in outcome.verdicts]
    missed = [(outcome.part, v) for outcome in outcomes for v in outcome.missed]
    lines = [f"targets: {len(verdicts) - len(missed)} met, {len(missed)} MISSED"]
    lines += [f"  MISSED {part}: {v.label} {v.figure} (target {v.target})" for part, v in missed]
    return "\n".join(lines)
