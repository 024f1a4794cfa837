"""Toxiproxy's own clients, unchanged, drive the fault proxy run as its CLI runs it.

The proxy runs as `python -m devstack.faults.proxy` (on uvloop), the upstream is a small
threaded echo server, and the clients are toxiproxy-python, chaostoolkit-toxiproxy (its
functions, and a whole `chaos run` experiment) and our own `devstack.faults.toxiproxy`.
"""

from __future__ import annotations

import json
import os
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from chaostoxi.proxy import actions as proxy_actions
from chaostoxi.proxy import probes
from chaostoxi.toxic import actions as toxic_actions
from toxiproxy import Toxiproxy
from toxiproxy.api import APIConsumer
from toxiproxy.exceptions import NotFound, ProxyExists

from devstack.faults.toxiproxy import ToxiproxyClient, ToxiproxyError
from devstack.stack.child import Child, tail
from devstack.stack.ports import free_port
from devstack.stack.waits import http_ok, wait_until

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        try:
            while data := self.request.recv(65536):
                self.request.sendall(data)
        except OSError:
            pass


@pytest.fixture(scope="module")
def echo() -> Iterator[str]:
    """A threaded TCP echo server; its `host:port`."""
    server = socketserver.ThreadingTCPServer((HOST, 0), _Echo)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="echo", daemon=True)
    thread.start()
    try:
        yield f"{HOST}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def start_proxy(log: Path, *args: str) -> tuple[Child, int]:
    port = free_port()
    argv = [sys.executable, "-m", "devstack.faults.proxy", "-host", HOST, "-port", str(port)]
    child = Child("toxiproxy", [*argv, *args], log, cwd=ROOT)
    child.start()
    wait_until(child, http_ok(f"http://{HOST}:{port}/version"), what="/version")
    return child, port


@pytest.fixture(scope="module")
def api_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The fault proxy's CLI on a free port, stopped (SIGTERM) at the end."""
    log = tmp_path_factory.mktemp("toxiproxy") / "toxiproxy.log"
    child, port = start_proxy(log)
    try:
        yield port
    finally:
        child.stop(timeout=5)
        assert child.returncode() == 0, tail(log)


@pytest.fixture
def client(api_port: int) -> Iterator[ToxiproxyClient]:
    with ToxiproxyClient(f"http://{HOST}:{api_port}") as toxiproxy:
        yield toxiproxy
        for name in toxiproxy.proxies():
            toxiproxy.delete(name)


def port_of(listen: str) -> int:
    return int(str(listen).rsplit(":", 1)[1])


def roundtrip(port: int) -> float:
    """Seconds for 4 bytes to come back through the proxy on a new connection."""
    with socket.create_connection((HOST, port), timeout=10) as sock:
        started = time.monotonic()
        sock.sendall(b"ping")
        assert sock.recv(4) == b"ping"
        return time.monotonic() - started


def baseline(port: int) -> float:
    """The fastest of a few round trips: the one least disturbed by the machine's load."""
    return min(roundtrip(port) for _ in range(3))


def refused(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((HOST, port)) != 0


def test_our_client_against_the_proxy(client: ToxiproxyClient, echo: str) -> None:
    """The runner's client: populate, toxics by name, enable/disable, reset, errors."""
    assert client.version()
    [proxy] = client.populate([{"name": "redis", "listen": f"{HOST}:0", "upstream": echo}])
    port = port_of(proxy["listen"])
    base = baseline(port)
    name = client.add_toxic("redis", "latency", attributes={"latency": 150, "jitter": 0})
    assert name == "latency_downstream"
    assert roundtrip(port) - base >= 0.150 - 0.005
    client.remove_toxic("redis", name)
    named = client.add_toxic("redis", "timeout", stream="upstream", toxicity=0.5, name="t")
    assert [t["name"] for t in client.toxics("redis")] == [named]
    client.set_enabled("redis", enabled=False)
    assert refused(port)
    assert client.proxies()["redis"]["enabled"] is False
    client.reset()
    assert client.proxy("redis")["toxics"] == []
    assert not refused(port)
    with pytest.raises(ToxiproxyError) as missing:
        client.remove_toxic("redis", "nope")
    assert missing.value.status == 404
    assert "toxic not found" in str(missing.value)
    with pytest.raises(ToxiproxyError) as taken:
        client.create("redis", upstream=echo)
    assert taken.value.status == 409


def test_our_client_names_an_unreachable_api() -> None:
    """No server: a ToxiproxyError (a RuntimeError) naming the call, without a status."""
    client = ToxiproxyClient(f"http://{HOST}:{free_port()}", timeout=2)
    with client, pytest.raises(ToxiproxyError, match=r"GET http://.*/proxies: Connect") as error:
        client.proxies()
    assert error.value.status is None


def test_toxiproxy_python(
    client: ToxiproxyClient, echo: str, api_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """toxiproxy-python's Toxiproxy and Proxy objects, as their README uses them."""
    monkeypatch.setattr(APIConsumer, "host", APIConsumer.host)  # restored afterwards
    monkeypatch.setattr(APIConsumer, "port", APIConsumer.port)
    server = Toxiproxy()
    server.update_api_consumer(HOST, api_port)
    assert server.running()
    assert b"version" in server.version()
    proxy = server.create(upstream=echo, name="echo")
    port = port_of(proxy.listen)
    with pytest.raises(ProxyExists):
        server.create(upstream=echo, name="echo")
    base = baseline(port)
    proxy.add_toxic(type="latency", attributes={"latency": 150})
    assert set(proxy.toxics()) == {"latency_downstream"}
    assert roundtrip(port) - base >= 0.150 - 0.005
    assert proxy.destroy_toxic("latency_downstream")
    assert proxy.toxics() == {}
    with proxy.down():
        assert refused(port)
    proxy.add_toxic(type="reset_peer", attributes={"timeout": 50})
    with pytest.raises(ConnectionResetError):
        roundtrip(port)
    assert server.reset()
    assert proxy.toxics() == {}
    assert roundtrip(port) < 10
    with pytest.raises(NotFound):
        APIConsumer.get("/proxies/nope")
    [other] = server.populate([{"name": "other", "upstream": echo, "listen": f"{HOST}:0"}])
    assert set(server.proxies()) == {"echo", "other"}
    assert other.destroy()
    server.destroy_all()
    assert server.proxies() == {}


def test_chaostoolkit_toxiproxy_functions(
    client: ToxiproxyClient, echo: str, api_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """chaostoolkit-toxiproxy's actions and probes, given our host and port."""
    monkeypatch.setenv("echo_PORT", "")  # create_proxy writes it; restored afterwards
    configuration = {"toxiproxy_host": HOST, "toxiproxy_port": api_port}
    upstream_host, upstream_port = echo.rsplit(":", 1)
    assert proxy_actions.create_proxy("echo", upstream_host, int(upstream_port),
                                      listen_host=HOST, configuration=configuration)  # fmt: skip
    port = int(configuration["echo_PORT"])
    assert probes.proxy_exist("echo", configuration)
    assert probes.get_proxy_attribute("echo", "upstream", configuration) == echo
    base = baseline(port)
    assert toxic_actions.create_latency_toxic("echo", "slow", 150, configuration=configuration)
    assert roundtrip(port) - base >= 0.150 - 0.005
    assert toxic_actions.delete_toxic("echo", "slow", configuration)
    for create, args in [(toxic_actions.create_bandwith_degradation_toxic, (1000,)),
                         (toxic_actions.create_slow_connection_close_toxic, (10,)),
                         (toxic_actions.create_timeout_toxic, (0,)),
                         (toxic_actions.create_slicer_toxic, (100, 10, 10)),
                         (toxic_actions.create_limiter_toxic, (10_000,))]:  # fmt: skip
        assert create("echo", create.__name__, *args, configuration=configuration)
    assert len(client.toxics("echo")) == 5
    assert proxy_actions.reset(configuration)
    assert client.toxics("echo") == []
    assert proxy_actions.disable_proxy("echo", configuration)
    assert refused(port)
    assert proxy_actions.enable_proxy("echo", configuration)
    assert proxy_actions.modify_proxy("echo", listen_address=f"{HOST}:0",
                                      configuration=configuration)  # fmt: skip
    assert int(configuration["echo_PORT"]) != port
    assert roundtrip(int(configuration["echo_PORT"])) < 10
    proxy_actions.delete_proxy("echo", configuration)
    assert not probes.proxy_exist("echo", configuration)


def test_chaos_run_experiment(
    client: ToxiproxyClient, echo: str, api_port: int, tmp_path: Path
) -> None:
    """`chaos run`: a steady-state probe, a latency toxic as the method, rolled back."""
    proxy = client.create("echo", upstream=echo)
    config = {"toxiproxy_host": HOST, "toxiproxy_port": api_port}

    def step(kind: str, name: str, module: str, func: str, **arguments: object) -> dict:
        provider = {"type": "python", "module": module, "func": func, "arguments": arguments}
        return {"type": kind, "name": name, "provider": provider}

    exists = step("probe", "proxy-exists", "chaostoxi.proxy.probes", "proxy_exist",
                  proxy_name="echo")  # fmt: skip
    experiment = {
        "title": "the database gets slow",
        "description": "a latency toxic through the Toxiproxy API",
        "configuration": config,
        "steady-state-hypothesis": {"title": "proxied", "probes": [{**exists, "tolerance": True}]},
        "method": [
            step("action", "slow", "chaostoxi.toxic.actions", "create_latency_toxic",
                 for_proxy="echo", toxic_name="slow", latency=100),
            step("probe", "toxics", "chaostoxi.proxy.probes", "get_proxy_attribute",
                 proxy_name="echo", attribute="toxics"),
        ],
        "rollbacks": [step("action", "fast", "chaostoxi.toxic.actions", "delete_toxic",
                           for_proxy="echo", toxic_name="slow")],
    }  # fmt: skip
    path = tmp_path / "experiment.json"
    path.write_text(json.dumps(experiment))
    journal = tmp_path / "journal.json"
    command = [str(Path(sys.executable).with_name("chaos")), "--no-version-check", "--no-log-file",
               "--settings", str(tmp_path / "settings.yaml"), "run", "--journal-path",
               str(journal), str(path)]  # fmt: skip
    env = {**os.environ, "HOME": str(tmp_path)}
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(journal.read_text())
    assert result["status"] == "completed"
    toxics = result["run"][1]["output"]
    assert [(t["name"], t["attributes"]["latency"]) for t in toxics] == [("slow", 100)]
    assert client.toxics("echo") == []  # rolled back
    assert roundtrip(port_of(proxy["listen"])) < 10


def test_cli_config_and_clean_stop(echo: str, tmp_path: Path) -> None:
    """-config creates the proxies at start; each change is logged; SIGTERM exits 0."""
    config = tmp_path / "proxies.json"
    config.write_text(json.dumps([{"name": "echo", "listen": f"{HOST}:0", "upstream": echo}]))
    log = tmp_path / "toxiproxy.log"
    child, port = start_proxy(log, "-config", str(config), "-seed", "7")
    try:
        with ToxiproxyClient(f"http://{HOST}:{port}") as client:
            proxy = client.proxy("echo")
            assert roundtrip(port_of(proxy["listen"])) < 10
            client.add_toxic("echo", "latency", attributes={"latency": 10})
            client.set_enabled("echo", enabled=False)
    finally:
        child.stop(timeout=5)
    assert child.returncode() == 0
    text = log.read_text()
    for expected in ["proxy echo created by populate", "populated 1 proxies",
                     "toxic latency_downstream added", "proxy echo updated"]:  # fmt: skip
        assert expected in text, text
