"""When a Patroni cluster counts as whole again after a leader fault (`patroni_members`)."""

from __future__ import annotations

from typing import Any

import pytest

from loadtests.scenario.leader import _settled


def member(role: str, state: str) -> dict[str, Any]:
    return {"role": role, "state": state}


@pytest.mark.parametrize(
    ("members", "whole"),
    [
        ({"pg-0": member("leader", "running"), "pg-1": member("sync_standby", "streaming")}, True),
        ({"pg-0": member("replica", "streaming"), "pg-1": member("leader", "running")}, True),
        # the old leader still starting, rewinding or stopped: not back yet
        ({"pg-0": member("replica", "starting"), "pg-1": member("leader", "running")}, False),
        ({"pg-0": member("replica", "stopped"), "pg-1": member("leader", "running")}, False),
        ({"pg-1": member("leader", "running")}, False),
        # no leader running (a switchover half done), or two: never whole
        ({"pg-0": member("leader", "stopping"), "pg-1": member("replica", "streaming")}, False),
        ({"pg-0": member("leader", "running"), "pg-1": member("leader", "running")}, False),
    ],
)
def test_whole_means_one_running_leader_and_every_other_member_streaming(
    members: dict[str, dict[str, Any]], whole: bool
) -> None:
    assert _settled(members, 2) is whole
