"""Fixtures over real services: the local stack, started once per session, and kept healthy.

Loaded through `pytest_plugins` in `tests/conftest.py`; a stack starts only when an
integration test asks for it, so unit-only runs need no services.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.stack import Stack, patroni
from devstack.stack.state import start_ticks
from devstack.upstream import UpstreamControl
from tests.servers import migrate


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The session's PostgreSQL primary + replica, Redis and demo upstream, migrated.

    STACK_HA=patroni makes the databases Patroni members, as for `make run` (the suite is
    written for the plain pair: tests that kill or promote `primary` assume it)."""
    ha = os.environ.get("STACK_HA") or "none"
    local = Stack(state_dir=tmp_path_factory.mktemp("stack-state"), ha=ha)
    local.start()
    try:
        migrate(local.env)
        yield local
    finally:
        local.stop()


# Addresses for what a Patroni-only stack does not start (nothing connects to them).
_UNUSED = {"REDIS_URL": "redis://127.0.0.1:1/0", "TIPS_UPSTREAM_URL": "http://127.0.0.1:1"}


@pytest.fixture(scope="module")
def patroni_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """etcd and two Patroni members (leader + synchronous standby), nothing else; shared by
    a module's tests. Teardown checks that no Patroni, PostgreSQL or etcd is left running."""
    cluster = Stack(state_dir=tmp_path_factory.mktemp("patroni-state"), external=_UNUSED,
                    ha="patroni")  # fmt: skip
    started = time.monotonic()
    cluster.start()
    logging.getLogger(__name__).info("Patroni stack started in %.1f s", time.monotonic() - started)
    data_dirs = [Path(info["data_dir"]) for info in cluster.services.values() if "api_url" in info]
    pids = [child.pid for child in cluster.children.values()]
    try:
        yield cluster
    finally:
        postmasters = [pid for pid in map(patroni.postmaster_pid, data_dirs) if pid is not None]
        cluster.stop()
        left = [pid for pid in pids + postmasters if start_ticks(pid, living=True) is not None]
        assert not left, f"still running after stop: {left}"


@pytest.fixture
def healthy_stack(stack: Stack) -> Stack:
    """The session stack with every dependency running again, whatever earlier tests did."""
    stack.heal()
    with UpstreamControl(stack.env["TIPS_UPSTREAM_CONTROL_URL"]) as control:
        control.set_mode("normal")
    return stack
