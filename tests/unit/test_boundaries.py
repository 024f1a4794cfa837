"""The layers hold: each package imports only what docs/architecture.md says it may, no
module imports one that imports it back, and the service stands without its development
equipment (devstack, loadtests, the sync twin and its dependencies), as in its image.
"""

from __future__ import annotations

import ast
import re
import tomllib
from collections.abc import Iterator
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

from tests.helpers import fresh_python

ROOT = Path(__file__).resolve().parents[2]
SERVICE = ("app", "project", "workers", "resilience_async")
PACKAGES = (*SERVICE, "devstack", "loadtests")
TWIN_DEPENDENCIES = {"requests", "pybreaker", "gunicorn"}


def imports(package: str) -> Iterator[tuple[str, str]]:
    """(file, imported module) for every import in `package`, lazy ones included."""
    for path in sorted((ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            else:
                continue
            for name in names:
                yield str(path.relative_to(ROOT)), name


def allowed_imports() -> dict[str, set[str]]:
    """The "may import" column of docs/architecture.md's package table."""
    table = (ROOT / "docs" / "architecture.md").read_text()
    rows = re.findall(r"^\| `(\w+)` \|[^|]*\|([^|]*)\|$", table, re.MULTILINE)
    return {package: set(re.findall(r"`(\w+)`", may)) for package, may in rows}


def test_the_architecture_table_names_every_package() -> None:
    assert set(allowed_imports()) == set(PACKAGES)


@pytest.mark.parametrize("package", PACKAGES)
def test_a_package_imports_only_the_layers_below_it(package: str) -> None:
    allowed = {package, *allowed_imports()[package]}
    found = {
        (path, name)
        for path, name in imports(package)
        if name.split(".")[0] in PACKAGES and name.split(".")[0] not in allowed
    }
    assert found == set()


def test_no_module_imports_one_that_imports_it_back() -> None:
    """Through any chain, lazy imports and those for types only included."""
    assert import_cycle(module_graph()) is None


def test_the_cycle_check_finds_a_cycle() -> None:
    cycle = import_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}})
    assert cycle is not None
    assert set(cycle) == {"a", "b", "c"}


def test_the_service_imports_nothing_of_the_twins_dependencies() -> None:
    found = [
        (path, name)
        for package in SERVICE
        for path, name in imports(package)
        if name.split(".")[0] in TWIN_DEPENDENCIES
    ]
    assert found == []


def module_graph() -> dict[str, set[str]]:
    """First-party module -> the first-party modules it imports (a name imported from a
    package counts as its submodule when there is one, else as the package)."""
    modules = {
        module_name(path): path for package in PACKAGES for path in (ROOT / package).rglob("*.py")
    }
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                submodules = (f"{node.module}.{alias.name}" for alias in node.names)
                targets = [sub if sub in modules else node.module for sub in submodules]
            else:
                continue
            graph[name] |= {target for target in targets if target in modules}
    return graph


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def import_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One chain of imports that comes back to where it started, or None."""
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as exc:
        return list(exc.args[1])
    return None


def test_only_the_workers_root_knows_the_actors() -> None:
    """A request names its job's actor by string in the outbox row; the web side never
    imports `workers.actors`, and `app` imports nothing of `workers` at all."""
    found = {
        path
        for package in ("app", "project")
        for path, name in imports(package)
        if name.startswith("workers.actors") or (package == "app" and name.startswith("workers"))
    }
    assert found == {"project/worker.py"}


def test_the_service_starts_without_the_twins_dependencies() -> None:
    """The web root and its URLconf and the worker's and relay's roots import with requests,
    pybreaker and gunicorn absent, and load nothing of devstack or loadtests, as in the
    service's image."""
    script = """
import project.asgi, project.urls, project.worker, project.relay
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("loadtests", "devstack"))
assert loaded == [], loaded
"""
    done = fresh_python(script, hidden=TWIN_DEPENDENCIES, DJANGO_SETTINGS_MODULE="project.settings")
    assert done.returncode == 0, done.stderr


def test_the_twins_dependencies_are_an_extra_that_dev_includes() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    def names(requirements: list[str]) -> set[str]:
        found = {re.split(r"[\[<>=;]", req)[0].strip() for req in requirements}
        return found - {project["name"]}

    extras = project["optional-dependencies"]
    assert names(project["dependencies"]).isdisjoint(TWIN_DEPENDENCIES)
    assert names(extras["service"]).isdisjoint(TWIN_DEPENDENCIES)
    assert names(extras["twin"]) == TWIN_DEPENDENCIES
    assert any("twin" in req for req in extras["dev"] if req.startswith("resilient-django["))
