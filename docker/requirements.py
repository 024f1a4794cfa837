"""Print the requirements of the library and of the named extras of pyproject.toml, one per
line, with the extras that name the project itself expanded (pip reads the output).

    python requirements.py service > requirements.txt
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path


def requirements(project: dict, extras: list[str]) -> list[str]:
    own = re.compile(rf"^{re.escape(project['name'])}\[([^\]]+)\]\s*$")
    found, todo, seen = list(project["dependencies"]), list(extras), set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for requirement in project["optional-dependencies"][extra]:
            if match := own.match(requirement):
                todo += [name.strip() for name in match.group(1).split(",")]
            else:
                found.append(requirement)
    return sorted(set(found), key=str.lower)


if __name__ == "__main__":
    here = Path(__file__).resolve().parent
    path = next(p for p in (here / "pyproject.toml", here.parent / "pyproject.toml") if p.exists())
    project = tomllib.loads(path.read_text())["project"]
    sys.stdout.write("".join(f"{line}\n" for line in requirements(project, sys.argv[1:])))
