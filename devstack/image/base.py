"""The base image from Debian's own packages: no image registry is needed.

`debootstrap` makes a minimal bookworm root filesystem with Python 3.11 (Debian's
`python3`) and its venv module; it is trimmed (no documentation, no apt lists), packed into a
tarball and `docker import`ed. The tarball is cached outside the checkout under a name keyed
by everything that decides its content (suite, variant, packages, trimming), so a change to
the recipe builds a new one, and an unchanged recipe is never bootstrapped twice. The image
carries the same key as a label, so an engine whose data-root already holds it skips the
import as well.

psycopg comes as its binary wheel (psycopg-binary, with its own libpq), so libpq5 is not
needed; ca-certificates is, for TLS to any upstream.

The image trusts what this machine trusts: its CA bundle replaces Debian's in the image, and
pip is pointed at it (pip otherwise reads its own certifi copy). The build downloads through
this machine's network, whose TLS may be intercepted by a proxy with a CA of its own. The
bundle is added at import, not bootstrapped, so a changed bundle costs an import, not a
debootstrap; the image's key covers both.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from devstack.image.apt import ensure_packages
from devstack.image.client import Docker

BASE_IMAGE = "resilient-django-base:bookworm"
SUITE = "bookworm"
VARIANT = "minbase"
PACKAGES = ("python3", "python3-venv", "ca-certificates")
MIRROR = "http://deb.debian.org/debian"
# Removed from the root filesystem: nothing at run time reads them.
TRIM = (
    "var/lib/apt/lists",
    "var/cache/apt",
    "var/cache/debconf/templates.dat-old",
    "var/log",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
)
BUNDLE = "etc/ssl/certs/ca-certificates.crt"
HOST_BUNDLE = Path("/") / BUNDLE
# What `docker import` writes into the image's configuration (a tarball has none): the
# PATH a Dockerfile's `ENV PATH=...:$PATH` extends, and a UTF-8 locale as python:slim has.
CHANGES = (
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    f"ENV PIP_CERT=/{BUNDLE}",
    'CMD ["python3"]',
)
KEY_LABEL = "org.resilient-django.base-key"
DEBOOTSTRAP_TIMEOUT = 1800.0


class BaseImageError(RuntimeError):
    """The base root filesystem could not be made; the message holds the failed command."""


def recipe_key() -> str:
    """A short hash of everything that decides the bootstrapped root filesystem."""
    recipe = "\n".join([SUITE, VARIANT, *PACKAGES, "--", *TRIM])
    return hashlib.sha256(recipe.encode()).hexdigest()[:16]


def image_key(bundle: bytes) -> str:
    """A short hash of the image: its root filesystem, configuration and CA bundle."""
    parts = [recipe_key().encode(), *(change.encode() for change in CHANGES), bundle]
    return hashlib.sha256(b"\n".join(parts)).hexdigest()[:16]


def rootfs_tarball(
    cache_dir: Path, *, mirror: str = MIRROR, say: Callable[[str], None] = print
) -> Path:
    """The cached root filesystem tarball of the current recipe, bootstrapped if missing."""
    tarball = cache_dir / f"base-{SUITE}-{recipe_key()}.tar"
    if tarball.exists():
        return tarball
    ensure_packages({"debootstrap": "debootstrap"})
    cache_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="base-", dir=cache_dir))
    try:
        started = time.monotonic()
        say(f"debootstrap {SUITE} ({VARIANT}, {', '.join(PACKAGES)}) from {mirror}")
        _run(
            "debootstrap", f"--variant={VARIANT}", f"--include={','.join(PACKAGES)}",
            SUITE, str(work / "rootfs"), mirror,
        )  # fmt: skip
        for path in TRIM:
            _empty(work / "rootfs" / path)
        partial = work / "rootfs.tar"
        _run("tar", "--numeric-owner", "-C", str(work / "rootfs"), "-cf", str(partial), ".")
        os.replace(partial, tarball)  # whole or absent: a crash leaves no half tarball
        for old in cache_dir.glob(f"base-{SUITE}-*.tar"):
            if old != tarball:  # an earlier recipe's
                old.unlink()
        say(f"base root filesystem in {time.monotonic() - started:.0f} s: {tarball}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return tarball


def base_image(
    docker: Docker,
    cache_dir: Path,
    *,
    trust: Path = HOST_BUNDLE,
    say: Callable[[str], None] = print,
) -> str:
    """BASE_IMAGE in the engine, imported from the cached tarball (with `trust`, a PEM CA
    bundle, as its own) unless already there."""
    bundle = trust.read_bytes()
    key = image_key(bundle)
    label = f'{{{{index .Config.Labels "{KEY_LABEL}"}}}}'
    found = docker.run("image", "inspect", "--format", label, BASE_IMAGE, check=False)
    if found.returncode == 0 and found.stdout.strip() == key:
        return BASE_IMAGE
    tarball = rootfs_tarball(cache_dir, say=say)
    changes = [
        arg for change in (*CHANGES, f"LABEL {KEY_LABEL}={key}") for arg in ("--change", change)
    ]
    with tempfile.TemporaryDirectory(prefix="import-", dir=cache_dir) as work:
        layer = Path(work) / "rootfs.tar"
        shutil.copyfile(tarball, layer)
        (Path(work) / BUNDLE).parent.mkdir(parents=True)
        (Path(work) / BUNDLE).write_bytes(bundle)
        # Debian's bundle out, this machine's in (a layer may not hold a path twice).
        _run("tar", "--delete", "-f", str(layer), f"./{BUNDLE}")
        _run("tar", "--numeric-owner", "--owner=0", "--group=0", "-rf", str(layer), "-C", work,
             f"./{BUNDLE}")  # fmt: skip
        docker.run("import", *changes, str(layer), BASE_IMAGE, timeout=600)
    say(f"imported {BASE_IMAGE} from {tarball.name} with {trust}")
    return BASE_IMAGE


def _empty(path: Path) -> None:
    """Remove what `path` holds (a directory stays, empty: packages expect some to exist)."""
    if path.is_dir():
        for entry in path.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    elif path.exists():
        path.unlink()


def _run(*argv: str) -> None:
    result = subprocess.run(
        argv, capture_output=True, text=True, timeout=DEBOOTSTRAP_TIMEOUT, check=False
    )
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()[-3000:]
        raise BaseImageError(f"{argv[0]} exited {result.returncode}: {output}")
