"""The service's image, built and run for real: on a dockerd of the test's own, host
networking only, against the session's stack.

The image is built by the code `make image` runs (devstack/image), on the base made from
Debian's packages. The first build on a machine bootstraps that base and downloads the
lock (minutes); later ones reuse the cached base tarball and the engine's cached layers
(seconds). Its container serves the image's own command on a free loopback port (the
command's --host and --port replaced), with the stack's settings.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from devstack.image import SERVICE_IMAGE, DockerEngine, base_image, build_service, image_size
from devstack.image.client import Docker
from devstack.image.paths import cache_dir
from devstack.stack import Stack
from devstack.stack.ports import free_port
from tests.helpers import wait_for
from tests.servers import HEALTH_TOKEN

# The first build on a machine (debootstrap, pip downloads) takes minutes, mostly waiting on
# the network: beside the scenario lanes. Later runs take seconds.
pytestmark = [pytest.mark.integration, pytest.mark.beside_scenarios, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
APP_UID = 10001
MAX_IMAGE_BYTES = 400_000_000
STOP_GRACE_S = 10
DRAIN_DELAY_S = 1.0
# The stack's settings a container must not take: the key is the test's (not a setting),
# and the metrics directory is a host path (the image has its own).
NOT_FOR_THE_CONTAINER = {"API_KEY", "PROMETHEUS_MULTIPROC_DIR"}


@dataclass
class Container:
    docker: Docker
    name: str
    url: str
    client: httpx.Client

    def inspect(self, template: str) -> str:
        return self.docker.run("inspect", "--format", template, self.name).stdout.strip()

    def logs(self) -> str:
        result = self.docker.run("logs", self.name)
        return result.stdout + result.stderr


@pytest.fixture(scope="module")
def docker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Docker]:
    """A dockerd of the module's own on the cached data-root; stopped at the end, leaving
    nothing behind: no process, no mount, no run directory."""
    log_path = tmp_path_factory.mktemp("dockerd") / "dockerd.log"
    engine = DockerEngine(cache_dir(None) / "docker", log_path=log_path)
    try:
        yield engine.start()
    finally:
        engine.stop()
    mounts = Path("/proc/self/mountinfo").read_text()
    assert (engine.run_dir.exists(), str(engine.run_dir) in mounts) == (False, False)


@pytest.fixture(scope="module")
def image(docker: Docker, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The service image, built as `make image` builds it (from its caches when warm), with
    the same tag: the build it replaces is pruned, not kept beside it."""
    started = time.monotonic()
    base = base_image(docker, cache_dir(None))
    log_path = tmp_path_factory.mktemp("build") / "build.log"
    build_service(docker, base=base, context=ROOT, log_path=log_path, tag=SERVICE_IMAGE)
    print(f"image {SERVICE_IMAGE} built in {time.monotonic() - started:.1f} s")  # noqa: T201
    return SERVICE_IMAGE


@pytest.fixture(scope="module")
def container(
    docker: Docker, image: str, stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Container]:
    """The image's command in a container on the host's network, serving on a free port."""
    port = free_port()
    settings = {key: value for key, value in stack.env.items() if key not in NOT_FOR_THE_CONTAINER}
    settings |= {
        "HEALTH_TOKEN": HEALTH_TOKEN,
        "LOG_FORMAT": "json",
        "HEALTH_CACHE_TTL": "0.2",
        "SHUTDOWN_DRAIN_DELAY": str(DRAIN_DELAY_S),
    }
    env_file = tmp_path_factory.mktemp("container") / "env"
    env_file.write_text("".join(f"{key}={value}\n" for key, value in settings.items()))
    name = f"resilient-django-test-{port}"
    docker.run(
        "run", "--detach", "--name", name, "--network=host", "--no-healthcheck",
        "--env-file", str(env_file), image, *served_on(docker, image, port),
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {stack.env['API_KEY']}"}
    client = httpx.Client(base_url=url, timeout=10, headers=headers)
    found = Container(docker, name, url, client)
    try:
        wait_for(lambda: live(client), timeout=30, show=found.logs)
        yield found
    finally:
        client.close()
        docker.run("rm", "--force", name, check=False)


def served_on(docker: Docker, image: str, port: int) -> list[str]:
    """The image's CMD with its listening address replaced by 127.0.0.1:`port`: on the
    host's network, its own 0.0.0.0:8000 would be the machine's."""
    command = json.loads(
        docker.run("image", "inspect", "--format", "{{json .Config.Cmd}}", image).stdout
    )
    assert command[0] == "uvicorn", command
    for option, value in (("--host", "127.0.0.1"), ("--port", str(port))):
        command[command.index(option) + 1] = value
    return command


def live(client: httpx.Client) -> bool:
    try:
        return client.get("/health/live").status_code == 200
    except httpx.HTTPError:
        return False


def test_the_image_is_below_its_size_bound(docker: Docker, image: str) -> None:
    """The service image, base included, stays below 400 MB."""
    size = image_size(docker, image)
    print(f"image {image}: {size / 1e6:.0f} MB")  # noqa: T201
    assert 50_000_000 < size < MAX_IMAGE_BYTES


def test_the_container_is_ready_on_the_stack(healthy_stack: Stack, container: Container) -> None:
    """Readiness from inside the image: the primary, the replica and Redis answer it."""
    response = container.client.get("/health/ready", headers={"X-Health-Token": HEALTH_TOKEN})
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "pass"


def test_an_order_written_through_the_container_reads_back(
    healthy_stack: Stack, container: Container
) -> None:
    """A POST with the API key is stored; a GET with its consistency token returns it."""
    item = f"image-{uuid.uuid4().hex[:12]}"
    body = json.dumps({"item": item, "quantity": 2})
    created = container.client.post(
        "/api/orders", content=body, headers={"Content-Type": "application/json"}
    )
    assert created.status_code == 201, created.text
    order = created.json()
    read = container.client.get(
        created.headers["Location"], headers={"X-Consistency-Token": order["consistency_token"]}
    )
    assert read.status_code == 200, read.text
    assert (read.json()["id"], read.json()["item"], read.json()["quantity"]) == (
        order["id"],
        item,
        2,
    )


def test_the_service_runs_as_the_unprivileged_user(container: Container) -> None:
    """uid 10001 inside (`id -u`) and as the host's kernel sees the server process."""
    inside = container.docker.run("exec", container.name, "id", "-u").stdout.strip()
    pid = container.inspect("{{.State.Pid}}")
    status = Path(f"/proc/{pid}/status").read_text()
    uids = next(line.split()[1:] for line in status.splitlines() if line.startswith("Uid:"))
    assert (inside, uids) == (str(APP_UID), [str(APP_UID)] * 4)


def test_docker_stop_drains_then_exits_cleanly(healthy_stack: Stack, container: Container) -> None:
    """SIGTERM (docker stop): readiness turns to draining, the server shuts down, and the
    container exits 0 well within the grace period (no SIGKILL)."""
    started = time.monotonic()
    stop = subprocess.Popen(
        ["docker", "stop", "--time", str(STOP_GRACE_S), container.name],
        env=container.docker.env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        draining = wait_for(lambda: ready_draining(container), timeout=STOP_GRACE_S)
        assert draining["output"] == "instance is draining"
        _, errors = stop.communicate(timeout=STOP_GRACE_S + 5)
    finally:
        if stop.poll() is None:
            stop.kill()
    elapsed = time.monotonic() - started
    assert stop.returncode == 0, errors
    assert container.inspect("{{.State.ExitCode}} {{.State.OOMKilled}}") == "0 false"
    assert elapsed < STOP_GRACE_S - 2, f"stopped after {elapsed:.1f} s"
    messages = [
        json.loads(line)["message"]
        for line in container.logs().splitlines()
        if line.startswith("{")
    ]
    shutdown = ["draining before shutdown", "Shutting down", "Application shutdown complete."]
    assert [message for message in messages if message in shutdown] == shutdown, messages


def ready_draining(container: Container) -> dict[str, str] | None:
    """/health/ready's answer while it is 503 (the server draining), else None."""
    try:
        response = container.client.get("/health/ready", headers={"X-Health-Token": HEALTH_TOKEN})
    except httpx.HTTPError:
        return None
    return response.json() if response.status_code == 503 else None
