"""The service's container image, built and run on this machine with no image registry.

The base comes from Debian's packages (`base.py`: debootstrap, then `docker import`), the
engine is a `dockerd` of our own (`engine.py`: host networking only, its own socket and
directories), and `build.py` builds the Dockerfile on both. `python -m devstack.image`
is what `make image` runs.
"""

from __future__ import annotations

from devstack.image.apt import AptError, ensure_packages
from devstack.image.base import BASE_IMAGE, base_image
from devstack.image.build import SERVICE_IMAGE, build_service, image_size
from devstack.image.engine import DockerEngine, EngineError

__all__ = [
    "BASE_IMAGE",
    "SERVICE_IMAGE",
    "AptError",
    "DockerEngine",
    "EngineError",
    "base_image",
    "build_service",
    "ensure_packages",
    "image_size",
]
