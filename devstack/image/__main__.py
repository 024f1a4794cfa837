"""`python -m devstack.image`: build the service's image on a base from Debian's packages.

What `make image` runs. The engine is DOCKER_HOST's when set; otherwise a dockerd of our
own is started for the build and stopped after it. Caches (the base's root filesystem
tarball, the engine's data-root) live in IMAGE_CACHE_DIR, /var/cache/resilient-django by
default: outside the checkout, so every run on the machine reuses them.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from devstack.image.apt import AptError
from devstack.image.base import BaseImageError, base_image
from devstack.image.build import SERVICE_IMAGE, build_service, image_size
from devstack.image.client import Docker, DockerError
from devstack.image.engine import DockerEngine, EngineError
from devstack.image.paths import cache_dir

ROOT = Path(__file__).resolve().parents[2]


def say(message: str) -> None:
    print(f"{'image':<9}| {message}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.image", description=__doc__)
    parser.add_argument("--tag", default=SERVICE_IMAGE, help=f"default: {SERVICE_IMAGE}")
    parser.add_argument("--target", default="service", help="the Dockerfile stage to build")
    args = parser.parse_args(argv)
    cache = cache_dir(os.environ.get("IMAGE_CACHE_DIR"))
    started = time.monotonic()
    try:
        with ExitStack() as stack:
            if host := os.environ.get("DOCKER_HOST"):
                docker = Docker(host, cache / "cli")
            else:
                docker = stack.enter_context(DockerEngine(cache / "docker"))
            base = base_image(docker, cache, say=say)
            log_path = cache / "build.log"
            log_path.unlink(missing_ok=True)
            say(f"building {args.tag} ({args.target}) on {base}; output in {log_path}")
            build_service(docker, base=base, context=ROOT, log_path=log_path, tag=args.tag,
                          target=args.target)  # fmt: skip
            size = image_size(docker, args.tag)
    except (AptError, BaseImageError, DockerError, EngineError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    say(f"{args.tag}: {size / 1e6:.0f} MB, built in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
