"""Hide installed modules from this process's imports, as if they were not installed.

`bench transport` asks what httpx's transport costs where `sniffio` is not installed:
httpcore tries `import sniffio` on its request path, and Python does not remember a failed
import, so each attempt walks every finder and every `sys.path` entry again. A hidden module
is missed the same way: the finder of the `sys.path` entry that holds it looks for a name
that is not there instead, and every other finder still runs. Hide before anything imports
the module (a module already imported stays).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Collection
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any

MISSING = "-hidden"  # appended to a hidden name: no module can be called that


class Withholding:
    """A `sys.path` entry's finder that misses `hidden` (and their submodules) as if absent."""

    def __init__(self, finder: Any, hidden: Collection[str]) -> None:
        self._finder = finder
        self.hidden = frozenset(hidden)

    def find_spec(self, fullname: str, target: ModuleType | None = None) -> ModuleSpec | None:
        if fullname.partition(".")[0] in self.hidden:
            # Asked for a name that cannot exist, so that the miss costs what a real one does.
            self._finder.find_spec(fullname + MISSING, target)
            return None
        spec: ModuleSpec | None = self._finder.find_spec(fullname, target)
        return spec

    def __getattr__(self, name: str) -> Any:
        return getattr(self._finder, name)  # invalidate_caches, path, iter_modules...


def hide(names: Collection[str]) -> None:
    """Make each of `names` (top-level modules) fail to import from now on in this process.

    Raises RuntimeError if one is imported already: hiding it then would hide nothing.
    """
    for name in names:
        if name in sys.modules:
            raise RuntimeError(f"{name} is imported already: hide it before anything imports it")
        spec = importlib.util.find_spec(name)  # also fills sys.path_importer_cache
        if spec is None or spec.origin is None:
            continue  # not installed: missed already
        key = _path_entry(spec)
        finder = sys.path_importer_cache[key]
        if isinstance(finder, Withholding):
            finder.hidden |= {name}
        else:
            sys.path_importer_cache[key] = Withholding(finder, {name})


def _path_entry(spec: ModuleSpec) -> str:
    """The `sys.path` entry (as spelled there: the cache's key) that `spec` was found on."""
    assert spec.origin is not None
    found = os.path.dirname(spec.origin)
    if spec.submodule_search_locations is not None:  # a package: its directory's parent
        found = os.path.dirname(found)
    for entry in sys.path:
        if os.path.realpath(entry or os.getcwd()) == os.path.realpath(found):
            return entry
    raise RuntimeError(f"{spec.name} was found outside sys.path, in {found}")
