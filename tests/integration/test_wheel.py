"""The project as others install it: a wheel built from the checkout, in fresh venvs.

The wheel carries what the packages read at run time (the shipped scenarios, the Chaos
Toolkit experiments, the migrations); `pip install` of it alone brings the library's core
and nothing more, and `import resilience_async` then works without the integrations.
"""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from loadtests.scenario import spec
from tests.servers import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.beside_scenarios]

INTEGRATIONS = ("psycopg", "psycopg_pool", "redis", "aiohttp", "httpx", "django", "uvicorn",
                "prometheus_client")  # fmt: skip


def run(*argv: str | Path, cwd: Path, timeout: float = 300) -> str:
    done = subprocess.run([str(arg) for arg in argv], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built by pip as a user's `pip install .` builds it, from a copy of the
    checkout's files (a build writes build/ and *.egg-info/ beside the sources)."""
    source = tmp_path_factory.mktemp("source")
    listed = run("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=ROOT)
    for name in filter(None, listed.split("\0")):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            (source / name).write_bytes((ROOT / name).read_bytes())
    dist = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", dist, source,
        cwd=source)  # fmt: skip
    (built,) = dist.glob("*.whl")
    return built


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Path:
    """A fresh venv holding the wheel and its own dependencies: the library's core alone."""
    home = tmp_path_factory.mktemp("venv")
    run(sys.executable, "-m", "venv", "--without-pip", home, cwd=home)
    python = home / "bin" / "python"
    run(sys.executable, "-m", "pip", "--python", python, "install", "--quiet",
        "--disable-pip-version-check", wheel, cwd=home)  # fmt: skip
    return python


def test_the_wheel_carries_scenarios_experiments_and_migrations(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"loadtests/scenario/shipped/{p.name}" for p in spec.SHIPPED.glob("*.toml")}
    experiments = {f"loadtests/chaos/{p.name}" for p in (ROOT / "loadtests/chaos").glob("*.json")}
    migrations = {str(p.relative_to(ROOT)) for p in (ROOT / "app/migrations").glob("0*.py")}
    assert shipped
    assert experiments
    assert migrations
    assert (shipped | experiments | migrations) - names == set()
    assert "resilience_async/py.typed" in names


def test_the_library_imports_with_its_core_dependencies_alone(venv: Path) -> None:
    """No integration is installed, none is imported, the breaker works, and a primitive
    that needs an integration names the extra to install."""
    script = f"""
import importlib.util, json, sys
import resilience_async
loaded = sorted(m for m in {INTEGRATIONS!r} if m in sys.modules)
installed = sorted(m for m in {INTEGRATIONS!r} if importlib.util.find_spec(m))
from resilience_async import CircuitBreaker
try:
    from resilience_async import Database
except ImportError as exc:
    missing = str(exc)
print(json.dumps({{"loaded": loaded, "installed": installed, "missing": missing,
                   "from": resilience_async.__file__, "breaker": CircuitBreaker.__name__}}))
"""
    found = json.loads(run(venv, "-c", script, cwd=venv.parent))
    assert found["installed"] == []
    assert found["loaded"] == []
    assert found["from"].startswith(str(venv.parents[1]))
    assert found["breaker"] == "CircuitBreaker"
    assert "resilient-django[postgres]" in found["missing"]


def test_the_installed_wheel_lists_its_scenarios(venv: Path, tmp_path: Path) -> None:
    """`scenario list` finds the shipped scenarios in the installed package, not the checkout
    (its third-party packages lent by this venv, after the wheel's own)."""
    site = Path(sysconfig.get_paths()["purelib"])
    own = Path(run(venv, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                   cwd=tmp_path).strip())  # fmt: skip
    (own / "zz_lent_dependencies.pth").write_text(f"{site}\n")
    where = run(venv, "-c", "import loadtests; print(loadtests.__file__)", cwd=tmp_path)
    assert where.startswith(str(own))
    listed = run(venv, "-m", "loadtests", "scenario", "list", cwd=tmp_path)
    names = [line.split()[0] for line in listed.splitlines() if line.strip()]
    assert names == sorted(p.stem for p in spec.SHIPPED.glob("*.toml"))
    assert "(invalid" not in listed
