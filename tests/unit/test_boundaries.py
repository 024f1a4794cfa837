"""The service stands without its benchmark equipment: the sync twin and its dependencies.

The twin (`loadtests/twin/`) imports the service, never the other way round; the service's
processes start with the twin's dependencies missing, as they are in the service's image.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVICE = ("app", "project", "workers", "resilience_async")
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


def test_the_service_imports_nothing_of_the_load_tools_or_the_twins_dependencies() -> None:
    found = [
        (path, name)
        for package in SERVICE
        for path, name in imports(package)
        if name.split(".")[0] in {"loadtests", *TWIN_DEPENDENCIES}
    ]
    assert found == []


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
    """The web root and its URLconf, the worker's and relay's roots and the demo upstream
    import with requests, pybreaker and gunicorn absent, as in the service's image."""
    script = f"""
import importlib.abc, sys
class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {sorted(TWIN_DEPENDENCIES)!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}")
sys.meta_path.insert(0, Absent())
import project.asgi, project.urls, project.worker, project.relay, loadtests.upstream.app
loaded = sorted(m for m in sys.modules if m.startswith("loadtests.twin"))
assert loaded == [], loaded
"""
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={"DJANGO_SETTINGS_MODULE": "project.settings", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_the_twins_dependencies_are_an_extra_that_dev_includes() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    def names(requirements: list[str]) -> set[str]:
        return {req.split(">")[0].split("[")[0].split("<")[0].strip() for req in requirements}

    extras = project["optional-dependencies"]
    assert names(project["dependencies"]).isdisjoint(TWIN_DEPENDENCIES)
    assert names(extras["twin"]) == TWIN_DEPENDENCIES
    assert any("twin" in req for req in extras["dev"] if req.startswith("resilient-django["))
