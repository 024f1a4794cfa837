"""Fixtures over real services: the local stack, started once per session, and kept healthy.

Loaded through `pytest_plugins` in `tests/conftest.py`; a stack starts only when an
integration test asks for it, so unit-only runs need no services.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.stack import Stack
from devstack.upstream import UpstreamControl
from tests.servers import migrate


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The session's PostgreSQL primary + replica, Redis and demo upstream, migrated."""
    local = Stack(state_dir=tmp_path_factory.mktemp("stack-state"))
    local.start()
    try:
        migrate(local.env)
        yield local
    finally:
        local.stop()


@pytest.fixture
def healthy_stack(stack: Stack) -> Stack:
    """The session stack with every dependency running again, whatever earlier tests did."""
    stack.heal()
    with UpstreamControl(stack.env["TIPS_UPSTREAM_CONTROL_URL"]) as control:
        control.set_mode("normal")
    return stack
