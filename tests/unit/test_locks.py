"""The locks agree with pyproject.toml: every requirement of the extras is locked at a version
inside its range, every pin is exact and hashed, the locks are complete (by the metadata of
the packages this venv installed from the dev lock), the service lock holds no development
package and ships the versions the tests ran, and `make install` installs from the dev lock
again whenever it or pyproject.toml changes.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.markers import Marker, default_environment
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
SERVICE_LOCK = ROOT / "requirements" / "service.txt"
DEV_LOCK = ROOT / "requirements" / "dev.txt"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
# What each lock is compiled from (the Makefile's `lock` target).
LOCKS = {SERVICE_LOCK: ("service",), DEV_LOCK: ("dev",)}
# Test, load, fault and build tools: never in the service's image, even before an extra of
# pyproject.toml names them (the rest of the development-only packages are read from it).
NEVER_IN_SERVICE = {
    "pytest", "hypothesis", "schemathesis", "locust", "chaostoolkit", "ruff", "mypy", "uv",
}  # fmt: skip
SHA256 = re.compile(r"sha256:[0-9a-f]{64}")


@dataclass(frozen=True)
class Pin:
    """One package of a lock: its exact version, the marker saying where it installs, and
    the hashes of the files pip may accept for it."""

    name: NormalizedName
    version: Version
    marker: Marker | None
    hashes: frozenset[str]

    def applies(self) -> bool:
        return self.marker is None or self.marker.evaluate()


def read_lock(path: Path) -> dict[NormalizedName, Pin]:
    """The pins of a pip requirements file as `make lock` writes it: `name==version [;
    marker]` followed by its `--hash` options, with `\\` continuations and `#` comments."""
    pins: dict[NormalizedName, Pin] = {}
    for line in path.read_text().replace("\\\n", " ").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        spec, *hashes = re.split(r"\s+--hash=", line.strip())
        requirement = Requirement(spec)
        (specifier,) = requirement.specifier
        assert specifier.operator == "==", line
        assert "*" not in specifier.version, line
        name = canonicalize_name(requirement.name)
        assert name not in pins, f"{name} is pinned twice in {path.name}"
        version = Version(specifier.version)
        pins[name] = Pin(name, version, requirement.marker, frozenset(hashes))
    return pins


def requirements_of(extras: tuple[str, ...]) -> list[Requirement]:
    """The project's own requirements and those of `extras`, the extras that name the
    project itself (`resilient-django[http,...]`) expanded."""
    found = [Requirement(text) for text in PROJECT["dependencies"]]
    todo, seen = list(extras), set[str]()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for text in PROJECT["optional-dependencies"][extra]:
            requirement = Requirement(text)
            if canonicalize_name(requirement.name) == canonicalize_name(PROJECT["name"]):
                todo += sorted(requirement.extras)
            else:
                found.append(requirement)
    return found


def applies(requirement: Requirement, extra: str = "") -> bool:
    """`requirement` is wanted here (CPython 3.11 on Linux, as in the image and CI)."""
    marker = requirement.marker
    return marker is None or marker.evaluate({**default_environment(), "extra": extra})


def names(requirements: list[Requirement]) -> set[NormalizedName]:
    return {canonicalize_name(requirement.name) for requirement in requirements}


def installed_closure(roots: list[Requirement], lock: dict[NormalizedName, Pin]) -> set[str]:
    """Every package `roots` need here, through the metadata of the installed ones, each of
    which must be installed at the version `lock` pins (that is what makes its metadata the
    locked version's)."""
    todo = [(canonicalize_name(r.name), frozenset(r.extras)) for r in roots if applies(r)]
    seen: set[tuple[NormalizedName, frozenset[str]]] = set()
    unmatched: list[str] = []
    while todo:
        name, extras = todo.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        try:
            distribution = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            unmatched.append(f"{name}: not installed")
            continue
        pinned = lock[name].version if name in lock else None
        if Version(distribution.version) != pinned:
            unmatched.append(f"{name}: {distribution.version} installed, {pinned} locked")
            continue
        for text in distribution.requires or []:
            requirement = Requirement(text)
            if any(applies(requirement, extra) for extra in ("", *extras)):
                todo.append((canonicalize_name(requirement.name), frozenset(requirement.extras)))
    assert unmatched == [], f"this venv is not the dev lock's (make install): {unmatched}"
    return {name for name, _ in seen}


@pytest.mark.parametrize("path", LOCKS, ids=lambda path: path.name)
def test_every_pin_is_exact_and_hashed(path: Path) -> None:
    """pip's --require-hashes accepts the lock: each line one package at one version, with
    the sha256 of every file of that version (wheels for each platform, the sdist)."""
    pins = read_lock(path)
    assert len(pins) > 10
    for pin in pins.values():
        assert pin.hashes, f"{pin.name} has no hash"
        assert all(SHA256.fullmatch(value) for value in pin.hashes), pin


@pytest.mark.parametrize(("path", "extras"), LOCKS.items(), ids=lambda v: getattr(v, "name", ""))
def test_every_requirement_of_the_extras_is_locked_within_its_range(
    path: Path, extras: tuple[str, ...]
) -> None:
    """A dependency added to pyproject.toml, or a range moved past the locked version, fails
    here until `make lock` is run."""
    pins = read_lock(path)
    wrong = [
        f"{requirement} (locked: {pins[name].version if name in pins else 'missing'})"
        for requirement in requirements_of(extras)
        if applies(requirement)
        for name in [canonicalize_name(requirement.name)]
        if name not in pins or not requirement.specifier.contains(pins[name].version, True)
    ]
    assert wrong == [], f"{path.name} is out of date (make lock): {wrong}"


@pytest.mark.parametrize(("path", "extras"), LOCKS.items(), ids=lambda v: getattr(v, "name", ""))
def test_a_lock_holds_what_its_extras_need_and_nothing_else(
    path: Path, extras: tuple[str, ...]
) -> None:
    """Complete (pip's --require-hashes refuses a dependency the lock does not pin) and
    without strays, by the requirements of each installed package: this venv holds the dev
    lock (make install), of which the service lock is a part."""
    lock = read_lock(path)
    needed = installed_closure(requirements_of(extras), read_lock(DEV_LOCK))
    locked = {pin.name for pin in lock.values() if pin.applies()}
    assert (sorted(needed - locked), sorted(locked - needed)) == ([], []), "(missing, strays)"


def test_the_service_lock_holds_no_development_package() -> None:
    """The image carries no test, benchmark, load or fault tool: none of what the other
    extras add beside the service's, and none of the usual test tools."""
    service = names(requirements_of(("service",)))
    development = names(requirements_of(("dev",))) - service
    assert development >= {"pytest", "locust", "gunicorn", "matplotlib", "uv"}
    assert sorted(set(read_lock(SERVICE_LOCK)) & (development | NEVER_IN_SERVICE)) == []


def test_the_image_ships_the_versions_the_tests_ran() -> None:
    """Every package of the service lock is in the dev lock, at the same version with the
    same hashes (`make lock` constrains the one by the other)."""
    dev = read_lock(DEV_LOCK)
    differ = [pin.name for pin in read_lock(SERVICE_LOCK).values() if dev.get(pin.name) != pin]
    assert differ == []


def make(tree: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", *args], cwd=tree,
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of what `make install` reads, its stamp newer than every source."""
    shutil.copy(ROOT / "Makefile", tmp_path)
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    shutil.copytree(ROOT / "requirements", tmp_path / "requirements")
    (tmp_path / ".venv").mkdir()
    stamp = tmp_path / ".venv" / ".installed"
    stamp.touch()
    for source in (tmp_path / "pyproject.toml", *(tmp_path / "requirements").iterdir()):
        os.utime(source, (stamp.stat().st_mtime - 60,) * 2)
    return tmp_path


@pytest.mark.parametrize("source", ["requirements/dev.txt", "pyproject.toml"])
def test_make_install_installs_again_when_the_dev_lock_or_pyproject_changes(
    tree: Path, source: str
) -> None:
    assert make(tree, "--question", ".venv/.installed").returncode == 0
    (tree / source).touch()
    assert make(tree, "--question", ".venv/.installed").returncode == 1


def test_make_install_installs_the_dev_lock_with_hashes_then_the_project_alone(
    tree: Path,
) -> None:
    """The commands make would run (`--dry-run`): nothing is installed from pyproject.toml's
    ranges."""
    done = make(tree, "--dry-run", "--always-make", ".venv/.installed")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    pips = [line.split(" install ", 1)[1] for line in lines if " install " in line]
    assert pips == ["--quiet --require-hashes -r requirements/dev.txt", "--quiet --no-deps -e ."]
