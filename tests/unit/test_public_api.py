"""The namespaces people import are the real ones: private unless promised, each promise
complete, sorted, named after itself and documented (httpx's layout)."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
from pathlib import Path
from types import ModuleType

import pytest

import resilience_async

ROOT = Path(__file__).resolve().parents[2]
# Everything else under resilience_async is private: a part of its dotted name starts with "_".
PUBLIC_NAMESPACES = (
    "resilience_async",
    "resilience_async.django",
    "resilience_async.prometheus",
    "resilience_async.uvicorn",
)
OUTSIDE = ("app", "project", "workers", "loadtests", "devstack")


def all_modules() -> list[str]:
    """Every module and package of the library, by dotted name (none imported)."""
    found = ["resilience_async"]
    found += [
        info.name for info in pkgutil.walk_packages(resilience_async.__path__, "resilience_async.")
    ]
    return found


def is_private(module: str) -> bool:
    return any(part.startswith("_") for part in module.split(".")[1:])


def ruff_order(name: str) -> tuple[int, str]:
    """How ruff's RUF022 sorts `__all__` (isort-style): CONSTANTS, then Classes, then the rest."""
    if name.isupper():
        return 0, name
    return (1 if name[0].isupper() else 2), name


def test_every_module_is_private_or_a_public_namespace() -> None:
    """Nothing in between: a module is `_private` or one of the four promised namespaces."""
    half_public = [m for m in all_modules() if not is_private(m) and m not in PUBLIC_NAMESPACES]
    assert half_public == []
    assert set(PUBLIC_NAMESPACES) <= set(all_modules())


@pytest.mark.parametrize("namespace", PUBLIC_NAMESPACES)
def test_all_is_sorted_unique_and_every_name_resolves(namespace: str) -> None:
    module = importlib.import_module(namespace)
    names = module.__all__
    assert names == sorted(names, key=ruff_order)
    assert len(set(names)) == len(names)
    for name in names:
        assert getattr(module, name) is not None, name


@pytest.mark.parametrize("namespace", PUBLIC_NAMESPACES)
def test_every_public_name_of_a_namespace_is_in_all(namespace: str) -> None:
    """What `from <namespace> import X` finds is what __all__ promises (httpx's test): a
    package re-exports, a module defines; either way no public name is left out."""
    module = importlib.import_module(namespace)
    assert public_names(module) == set(module.__all__)


def public_names(module: ModuleType) -> set[str]:
    """A package's names (re-exported, or lazily loaded: `__dir__`), a module's definitions."""
    if hasattr(module, "__path__"):
        names = set(dir(module)) | set(vars(module))
        return {
            name
            for name in names
            if not name.startswith("_")
            and name not in ("annotations", "TYPE_CHECKING")
            and not inspect.ismodule(getattr(module, name))
        }
    tree = ast.parse(inspect.getsource(module))
    defined: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            defined.add(node.name)
        elif isinstance(node, ast.Assign):
            defined |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            defined.add(node.target.id)
    return {name for name in defined if not name.startswith("_")}


@pytest.mark.parametrize("namespace", ["resilience_async", "resilience_async.django"])
def test_exported_classes_and_functions_are_named_after_their_namespace(namespace: str) -> None:
    """Reprs and tracebacks say `resilience_async.CircuitOpenError`, not a private path."""
    module = importlib.import_module(namespace)
    for name in module.__all__:
        value = getattr(module, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert value.__module__ == namespace, name


def _core_modules() -> list[ModuleType]:
    optional = ("resilience_async.django", "resilience_async.prometheus")
    return [
        importlib.import_module(name) for name in all_modules() if not name.startswith(optional)
    ]


def test_every_module_of_the_core_imports_without_django_or_prometheus() -> None:
    """The core is framework-free: only the adapter and the optional hook set import those."""
    for module in _core_modules():
        source = inspect.getsource(module)
        for framework in ("django", "prometheus_client"):
            assert f"import {framework}" not in source, (module.__name__, framework)
            assert f"from {framework}" not in source, (module.__name__, framework)


def _imports_outside() -> list[tuple[str, str]]:
    """(file, module) for every import of the library outside it, lazy ones included,
    and every dotted path to it in a string (Django's MIDDLEWARE, LOGGING's factories)."""
    found = []
    for package in OUTSIDE:
        for path in sorted((ROOT / package).rglob("*.py")):
            text = path.read_text()
            where = str(path.relative_to(ROOT))
            for node in ast.walk(ast.parse(text, where)):
                if isinstance(node, ast.Import):
                    found += [(where, alias.name) for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    found.append((where, node.module))
                elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                    dotted = re.fullmatch(r"(resilience_async(\.\w+)*)\.\w+", node.value)
                    if dotted:
                        found.append((where, dotted[1]))
    return [(where, name) for where, name in found if name.split(".")[0] == "resilience_async"]


def test_nothing_outside_the_library_imports_a_private_module() -> None:
    """app, project, workers, loadtests and devstack use the four public namespaces only."""
    private = [(where, name) for where, name in _imports_outside() if is_private(name)]
    assert private == []
    assert _imports_outside(), "the scan finds the project's imports of the library"


def test_the_type_checkers_imports_match_the_lazy_ones() -> None:
    """mypy and IDEs read the `if TYPE_CHECKING:` imports, the interpreter `_MODULES`: the
    two name the same names in the same modules, and `__all__` is exactly those names."""
    tree = ast.parse((ROOT / "resilience_async" / "__init__.py").read_text())
    block = next(
        node
        for node in tree.body
        if isinstance(node, ast.If)
        and isinstance(node.test, ast.Name)
        and node.test.id == "TYPE_CHECKING"
    )
    for_types = {
        alias.name: node.module.removeprefix("resilience_async.")
        for node in block.body
        if isinstance(node, ast.ImportFrom) and node.module
        for alias in node.names
    }
    lazy = resilience_async._HOME  # type: ignore[attr-defined]
    assert for_types == lazy
    assert set(lazy) == set(resilience_async.__all__)


def test_dir_lists_every_promised_name_before_it_is_loaded() -> None:
    assert set(resilience_async.__all__) <= set(dir(resilience_async))
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        resilience_async.Nope  # type: ignore[attr-defined]  # noqa: B018


def documented() -> tuple[set[str], list[str]]:
    """The identifiers inside `inline code` of docs/library.md (fenced blocks left out, so a
    name only shown in an example does not count), and the spans themselves."""
    text = (ROOT / "docs" / "library.md").read_text()
    prose = re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)
    spans = re.findall(r"`([^`\n]+)`", prose)
    names = {token for span in spans for token in re.findall(r"[A-Za-z_]\w*", span)}
    return names, spans


@pytest.mark.parametrize("namespace", PUBLIC_NAMESPACES)
def test_every_promised_name_is_documented(namespace: str) -> None:
    """docs/library.md is the reference: it names each namespace, and every name of every
    `__all__` in backticks."""
    names, spans = documented()
    assert any(namespace in span for span in spans), namespace
    missing = sorted(set(importlib.import_module(namespace).__all__) - names)
    assert missing == []
