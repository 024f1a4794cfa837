"""The service's image: the Dockerfile built on the local base, with the host's network.

`--network=host`: the engine has no bridge, so a build step (pip downloading the lock's
wheels) reaches the network only as the host does. `--force-rm`: a failed step's container
is removed too (kept, it would pin its layers in the cached data-root). The legacy builder
keeps the layers in the engine's data-root, so an unchanged lock is not downloaded again.
"""

from __future__ import annotations

from pathlib import Path

from devstack.image.client import Docker

SERVICE_IMAGE = "resilient-django:local"
# The Dockerfile's other stages, tagged too: an untagged stage is "dangling" once built, and
# the prune below would take it, and with it the next build's cache (the builder's venv).
STAGE_TAGS = {
    "builder": "resilient-django-builder:local",
    "devstack": "resilient-django-devstack:local",
}
BUILD_TIMEOUT = 1800.0


def build_service(
    docker: Docker,
    *,
    base: str,
    context: Path,
    log_path: Path,
    tag: str = SERVICE_IMAGE,
    target: str = "service",
) -> str:
    """Build `target` of the Dockerfile in `context` on `base`, tagged `tag`; its output
    goes to `log_path`. Returns the tag."""
    for stage, stage_tag in [*STAGE_TAGS.items(), (target, tag)]:
        docker.stream(
            "build", "--network=host", "--force-rm", "--build-arg", f"BASE_IMAGE={base}",
            "--target", stage, "--tag", stage_tag, str(context),
            log_path=log_path, timeout=BUILD_TIMEOUT,
        )  # fmt: skip
        if stage == target:
            break
    # The previous build's images, now untagged: the data-root is kept between runs, so
    # they would pile up. The tagged stages' layers (the next build's cache) stay.
    docker.run("image", "prune", "--force", timeout=300)
    return tag


def image_size(docker: Docker, tag: str = SERVICE_IMAGE) -> int:
    """The image's size in bytes, its base's layers included (what `docker images` shows)."""
    return int(docker.run("image", "inspect", "--format", "{{.Size}}", tag).stdout)
