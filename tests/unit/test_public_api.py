"""The namespace people import is the real one: complete, sorted, and named after itself."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from types import ModuleType

import resilience_async

PUBLIC = resilience_async.__all__


def test_all_is_sorted_and_every_name_resolves() -> None:
    assert sorted(PUBLIC) == PUBLIC
    assert len(set(PUBLIC)) == len(PUBLIC)
    for name in PUBLIC:
        assert getattr(resilience_async, name) is not None, name


def test_every_public_name_in_the_namespace_is_in_all() -> None:
    """What `from resilience_async import X` finds is what __all__ promises (httpx's test)."""
    names = {
        name
        for name, value in vars(resilience_async).items()
        if not name.startswith("_") and not inspect.ismodule(value) and name != "annotations"
    }
    assert names == set(PUBLIC)


def test_public_classes_and_functions_are_named_after_the_namespace() -> None:
    """Reprs and tracebacks say `resilience_async.CircuitOpenError`, not a private path."""
    for name in PUBLIC:
        value = getattr(resilience_async, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert value.__module__ == "resilience_async", name


def test_no_public_class_lives_in_an_underscore_module() -> None:
    """Private modules (`_slots`, `breaker/_surface`...) hold helpers, never what is exported."""
    exported = {id(getattr(resilience_async, name)) for name in PUBLIC}
    for module in _core_modules():
        if not any(part.startswith("_") for part in module.__name__.split(".")[1:]):
            continue
        tree = ast.parse(inspect.getsource(module))
        defined = [node.name for node in tree.body if isinstance(node, ast.ClassDef)]
        for name in defined:
            assert id(getattr(module, name)) not in exported, (module.__name__, name)


def _core_modules() -> list[ModuleType]:
    optional = ("resilience_async.django", "resilience_async.prometheus")
    return [
        importlib.import_module(info.name)
        for info in pkgutil.walk_packages(resilience_async.__path__, "resilience_async.")
        if not info.name.startswith(optional)
    ]


def test_every_module_of_the_core_imports_without_django_or_prometheus() -> None:
    """The core is framework-free: only the adapter and the optional hook set import those."""
    for module in _core_modules():
        source = inspect.getsource(module)
        for framework in ("django", "prometheus_client"):
            assert f"import {framework}" not in source, (module.__name__, framework)
            assert f"from {framework}" not in source, (module.__name__, framework)
