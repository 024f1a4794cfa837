"""The compose files hold together: what they name exists (services, volumes, files, build
stages) and every variable they interpolate is well-formed.

No compose plugin on the machine the suite runs on (`docker compose config` would say this
too), and compose.patroni.yaml is not started by any test: this is what checks it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.test_dockerfile import stages

ROOT = Path(__file__).resolve().parents[2]
FILES = ["compose.yaml", "compose.patroni.yaml"]
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?message}, ${NAME?message}
VARIABLE = re.compile(r"\$\{[A-Z_][A-Z0-9_]*(?:(?::?-|:?\?)[^}]*)?\}")


def load(name: str) -> dict[str, Any]:
    document = yaml.safe_load((ROOT / name).read_text())
    assert isinstance(document, dict)
    return document


def strings(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [text for value in node.values() for text in strings(value)]
    if isinstance(node, list):
        return [text for value in node for text in strings(value)]
    return [node] if isinstance(node, str) else []


@pytest.fixture(params=FILES)
def compose(request: pytest.FixtureRequest) -> dict[str, Any]:
    return load(request.param)


def test_dependencies_are_services_of_the_same_file(compose: dict[str, Any]) -> None:
    services = compose["services"]
    needed = {dep for service in services.values() for dep in service.get("depends_on", {})}
    assert needed <= set(services), needed - set(services)


def test_named_volumes_are_declared_and_bind_mounts_exist(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).is_file(), f"{name}: {source} does not exist"
            else:
                assert source in declared, f"{name}: volume {source} is not declared"


def test_builds_name_an_existing_context_and_stage(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        build = service.get("build")
        if build is None:
            continue
        dockerfile = ROOT / build["context"] / build.get("dockerfile", "Dockerfile")
        names = {stage.name for stage in stages(dockerfile.read_text())}
        assert build.get("target", "service") in names, f"{name}: no stage {build.get('target')}"
        for value in build.get("args", {}).values():
            assert VARIABLE.fullmatch(value), f"{name}: build arg {value!r}"


def test_every_interpolation_is_well_formed(compose: dict[str, Any]) -> None:
    """A `$` starts a variable (or is doubled); a malformed one stops Compose at load."""
    for text in strings(compose):
        rest = VARIABLE.sub("", text.replace("$$", ""))
        assert "$" not in rest, text


def test_the_patroni_variant_reaches_every_member() -> None:
    """The app's primary URL lists every Patroni member, the members find etcd, and each
    advertises its own name."""
    compose = load("compose.patroni.yaml")
    services = compose["services"]
    members = [
        name
        for name, service in services.items()
        if "PATRONI_NAME" in service.get("environment", {})
    ]
    assert len(members) >= 2
    url = services["web"]["environment"]["DATABASE_URL"]
    hosts = re.search(r"@([^/]+)/", url)
    assert hosts, url
    assert [host.split(":")[0] for host in hosts[1].split(",")] == members
    for name in members:
        environment = services[name]["environment"]
        assert environment["PATRONI_NAME"] == name
        assert environment["PATRONI_POSTGRESQL_CONNECT_ADDRESS"] == f"{name}:5432"
        assert environment["PATRONI_ETCD3_HOST"].split(":")[0] in services


def test_the_patroni_image_installs_patroni_3_2_or_later() -> None:
    text = (ROOT / "docker/patroni/Dockerfile").read_text()
    pins = re.findall(r"patroni\[[^\]]*\]==(\d+)\.(\d+)", text)
    assert pins, "patroni is not pinned"
    assert all((int(major), int(minor)) >= (3, 2) for major, minor in pins)
