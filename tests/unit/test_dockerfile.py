"""The service's image installs the service lock with hashes and runs as a non-root user.

A static check, reading the Dockerfile: what it asks for, whatever the base. The stages
that make the default target (the last), every `pip install` among them, their last USER,
what they hand to that user, and the base they start from. tests/integration/test_image.py
builds the image (on the local Debian base) and runs it.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVICE_LOCK = "requirements/service.txt"


@dataclass(eq=False)
class Stage:
    """One FROM and the instructions under it, each as (INSTRUCTION, its arguments)."""

    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args(self, instruction: str) -> list[str]:
        return [args for name, args in self.instructions if name == instruction]


def stages(text: str) -> list[Stage]:
    """The Dockerfile's stages, comment lines dropped and `\\` continuations joined."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    found: list[Stage] = []
    for line in "\n".join(lines).replace("\\\n", " ").splitlines():
        if not line.strip():
            continue
        instruction, _, args = line.strip().partition(" ")
        instruction, args = instruction.upper(), args.strip()
        if instruction == "FROM":
            words = [word for word in args.split() if not word.startswith("--")]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else ""
            found.append(Stage(base=words[0], name=name))
        elif found:
            found[-1].instructions.append((instruction, args))
    return found


def copy_from(args: str) -> str | None:
    match = re.search(r"--from=(\S+)", args)
    return match.group(1) if match else None


def chain(target: Stage, every: list[Stage]) -> list[Stage]:
    """`target` and the stages it is FROM, base first: its filesystem and its USER."""
    by_name = {stage.name: stage for stage in every if stage.name}
    found = [target]
    while found[0].base in by_name:
        found.insert(0, by_name[found[0].base])
    return found


def behind(target: Stage, every: list[Stage]) -> list[Stage]:
    """`target`'s chain and, before it, every stage that chain copies from (theirs too)."""
    by_name = {stage.name: stage for stage in every if stage.name}
    own = chain(target, every)
    sources = [
        by_name[source]
        for stage in own
        for args in stage.args("COPY")
        if (source := copy_from(args)) in by_name
    ]
    fed = [stage for source in sources for stage in behind(source, every)]
    return [*dict.fromkeys(stage for stage in fed if stage not in own), *own]


STAGES = stages((ROOT / "Dockerfile").read_text())
DEFAULT = STAGES[-1]
RUNTIME = chain(DEFAULT, STAGES)
USED = behind(DEFAULT, STAGES)


def test_every_stage_starts_from_the_base_argument_or_a_stage() -> None:
    """One base for every stage, the official python image unless `make image` passes its
    own: the venv made in the builder runs in the runtime stage only on the same Python."""
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11-slim$", text, re.MULTILINE)
    named = {stage.name for stage in STAGES}
    assert all(stage.base in {"${BASE_IMAGE}"} | named for stage in STAGES)


def test_no_instruction_names_where_the_base_keeps_python() -> None:
    """python:slim keeps it in /usr/local/bin, Debian in /usr/bin: only PATH finds it."""
    instructions = [args for stage in STAGES for _, args in stage.instructions]
    assert not [args for args in instructions if re.search(r"/usr(/local)?/bin/python", args)]


def test_the_default_target_is_the_service() -> None:
    assert DEFAULT.name == "service"


def test_every_pip_install_of_the_service_is_the_service_lock_with_hashes() -> None:
    """Installed from the lock a COPY put in the stage before, with --require-hashes: never
    from pyproject.toml's ranges, never the dev lock."""
    installs = 0
    for stage in USED:
        copied: dict[str, str] = {}
        for instruction, args in stage.instructions:
            if instruction == "COPY" and copy_from(args) is None:
                *sources, destination = shlex.split(args)
                assert "requirements/dev.txt" not in sources
                if len(sources) == 1:
                    copied[destination] = sources[0]
            if instruction != "RUN":
                continue
            for command in re.split(r"\bpip3?\s+install\b", args)[1:]:
                installs += 1
                words = shlex.split(re.split(r"&&|;|\|", command)[0])
                assert "--require-hashes" in words, args
                assert "-r" in words, args
                assert copied.get(words[words.index("-r") + 1]) == SERVICE_LOCK, args
    assert installs >= 1


def test_the_service_runs_as_a_non_root_user() -> None:
    """The last USER of the default target's stages (the one its processes run as)."""
    users = [args for stage in RUNTIME for args in stage.args("USER")]
    assert users, "no USER: the image would run as root"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}


def test_the_user_owns_only_the_directory_it_writes() -> None:
    """The code and the venv stay root's (read-only to the user): the one chown is
    prometheus-client's multiprocess directory, and no COPY hands files to the user."""
    owned = [
        target
        for stage in RUNTIME
        for args in stage.args("RUN")
        for command in re.findall(r"chown\s+([^&;|]+)", args)
        for target in [word for word in shlex.split(command) if not word.startswith("-")][1:]
    ]
    copied_to_user = [args for stage in RUNTIME for args in stage.args("COPY") if "--chown" in args]
    assert (owned, copied_to_user) == (["$PROMETHEUS_MULTIPROC_DIR"], [])
