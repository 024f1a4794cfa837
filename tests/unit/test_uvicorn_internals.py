"""What `resilience_async.uvicorn` takes from uvicorn's httptools protocol is still there.

`GuardedHttpToolsProtocol` subclasses `HttpToolsProtocol` and reads attributes uvicorn
keeps for itself. pyproject.toml caps uvicorn below its next minor release; when the cap is
raised, a test here fails by the name of each part that moved.
"""

from __future__ import annotations

import asyncio
import inspect

import pytest
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState

from resilience_async.uvicorn import GuardedHttpToolsProtocol

# Methods the subclass overrides (it calls each one's super()) or calls, with their
# parameters (not counting self).
METHODS = {
    "connection_made": ["transport"],
    "data_received": ["data"],
    "on_message_begin": [],
    "on_headers_complete": [],
    "on_message_complete": [],
    "send_400_response": ["msg"],
    "shutdown": [],
    "_get_upgrade": [],
    "_should_upgrade_to_ws": [],
}
# What a protocol holds, read by the subclass.
PROTOCOL_ATTRIBUTES = ("loop", "transport", "parser", "headers", "cycle", "connections",
                       "server_state", "logger", "flow")  # fmt: skip
# What the subclass reads or sets on a request's cycle when a deadline passes.
CYCLE_ATTRIBUTES = ("response_started", "response_complete", "disconnected", "message_event")


async def _app(scope: object, receive: object, send: object) -> None:
    raise AssertionError("not called")


@pytest.mark.parametrize("name", sorted(METHODS))
def test_each_method_used_is_there_with_its_parameters(name: str) -> None:
    method = getattr(HttpToolsProtocol, name, None)
    assert method is not None, f"HttpToolsProtocol.{name} is gone"
    parameters = list(inspect.signature(method).parameters)[1:]
    assert parameters == METHODS[name], f"HttpToolsProtocol.{name} takes {parameters} now"


async def test_each_protocol_attribute_read_is_set_by_its_constructor() -> None:
    config = Config(app=_app, http="httptools", ws="none")
    config.load()
    protocol = HttpToolsProtocol(config, ServerState(), {}, _loop=asyncio.get_running_loop())
    missing = [name for name in PROTOCOL_ATTRIBUTES if not hasattr(protocol, name)]
    assert missing == [], f"HttpToolsProtocol no longer sets {missing}"
    assert hasattr(protocol.server_state, "default_headers"), "ServerState.default_headers"


def test_each_cycle_attribute_used_is_set_by_its_constructor() -> None:
    source = inspect.getsource(RequestResponseCycle.__init__)
    missing = [name for name in CYCLE_ATTRIBUTES if f"self.{name} =" not in source]
    assert missing == [], f"RequestResponseCycle no longer sets {missing}"


async def test_the_guarded_protocol_builds_on_a_real_config() -> None:
    """The subclass constructs as uvicorn constructs it, with its limits in place."""
    config = Config(app=_app, http=GuardedHttpToolsProtocol, ws="none")
    config.load()
    protocol = GuardedHttpToolsProtocol(config, ServerState(), {},
                                        _loop=asyncio.get_running_loop())  # fmt: skip
    assert not protocol.overdue(protocol.loop.time())
    assert protocol.header_timeout > 0
