"""Reading Patroni's `/cluster` answers, and re-ordering a primary URL behind its leader.

The answers in `patroni_cluster/` were recorded from a three-member STACK_HA=patroni stack
(Patroni 4.1.5 on etcd 3.4): healthy, during a switchover from pg-0 to pg-1 (the leader
stopping, then the old leader stopped while no one leads yet, then pg-1 leading), and
after the leader was killed (its member key expired, pg-2 took over).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from resilience_async._patroni import ClusterView, PatroniError, parse_cluster
from resilience_async._topology import _exclusion, _hosts, _with_first

RECORDED = Path(__file__).parent / "patroni_cluster"


def recorded(name: str) -> ClusterView:
    return parse_cluster(json.loads((RECORDED / f"{name}.json").read_text()))


def roles(view: ClusterView) -> dict[str, tuple[str, str, int | None]]:
    return {m.name: (m.role, m.state, m.lag) for m in view.members}


def test_a_healthy_cluster_has_a_leader_and_readable_replicas() -> None:
    view = recorded("healthy")
    assert roles(view) == {
        "pg-0": ("leader", "running", None),
        "pg-1": ("sync_standby", "streaming", 0),
        "pg-2": ("replica", "streaming", 0),
    }
    assert view.leader is not None
    assert view.leader.name == "pg-0"
    assert [m.name for m in view.members if m.readable] == ["pg-1", "pg-2"]


def test_a_stopping_leader_is_no_leader() -> None:
    view = recorded("leader_stopping")
    assert view.leader is None
    assert roles(view)["pg-0"] == ("leader", "stopping", None)


def test_a_stopped_member_with_unknown_lag_is_not_readable() -> None:
    view = recorded("old_leader_stopped")
    assert view.leader is None
    stopped = next(m for m in view.members if m.name == "pg-0")
    assert (stopped.role, stopped.state, stopped.lag) == ("replica", "stopped", None)
    assert not stopped.readable
    assert _exclusion(stopped) == "Patroni lists pg-0 as replica (stopped)"
    # A replica whose upstream went away still runs and serves (its lag is measured).
    assert [m.name for m in view.members if m.readable] == ["pg-1", "pg-2"]


def test_the_new_leader_is_found_by_its_address() -> None:
    view = recorded("new_leader")
    assert view.leader is not None
    assert view.leader.name == "pg-1"
    assert view.find([None, view.leader.address]) is view.leader
    assert view.find([("127.0.0.1", 1)]) is None
    assert _exclusion(view.leader) == "Patroni lists pg-1 as leader (running)"
    assert _exclusion(None) == "not a member Patroni lists"


def test_a_killed_member_drops_out_once_its_key_expires() -> None:
    view = recorded("after_crash")
    assert roles(view) == {"pg-0": ("replica", "streaming", 0), "pg-2": ("leader", "running", None)}


@pytest.mark.parametrize(
    "document", [None, [], {"members": None}, {"members": [{"role": "leader"}]}, {"members": [1]}]
)
def test_an_answer_that_is_not_patronis_is_refused(document: object) -> None:
    with pytest.raises(PatroniError):
        parse_cluster(document)


def test_the_leaders_host_moves_first_and_the_rest_is_kept() -> None:
    url = "postgresql://postgres@127.0.0.1:5001,127.0.0.2:5002,127.0.0.3:5003/app?target_session_attrs=read-write"
    assert _hosts(url) == [("127.0.0.1", 5001), ("127.0.0.2", 5002), ("127.0.0.3", 5003)]
    moved = _with_first(url, 2)
    assert _hosts(moved) == [("127.0.0.3", 5003), ("127.0.0.1", 5001), ("127.0.0.2", 5002)]
    params = conninfo_to_dict(moved)
    assert (params["dbname"], params["user"]) == ("app", "postgres")
    assert params["target_session_attrs"] == "read-write"


def test_one_port_serves_every_host() -> None:
    assert _hosts("host=a,b port=6432 dbname=app") == [("a", 6432), ("b", 6432)]
