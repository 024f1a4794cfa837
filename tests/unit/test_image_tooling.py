"""The image tooling's promises that need no engine: a dockerd that can give no container
an address, and caches keyed by what decides their content."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack.image import base
from devstack.image.engine import DockerEngine

UNIX_PATH_MAX = 108


def test_the_engine_has_no_bridge_no_nat_and_its_own_paths(tmp_path: Path) -> None:
    engine = DockerEngine(tmp_path / "data")
    try:
        argv = engine.argv()
        assert {"--bridge=none", "--iptables=false", "--ip-masq=false"} <= set(argv)
        hosts = [arg.removeprefix("--host=") for arg in argv if arg.startswith("--host")]
        assert hosts == [f"unix://{engine.run_dir}/docker.sock"]
        assert f"--data-root={tmp_path / 'data'}" in argv
        own = [arg for arg in argv if arg.startswith(("--exec-root", "--pidfile", "--config-file"))]
        assert len(own) == 3
        assert all(arg.split("=", 1)[1].startswith(str(engine.run_dir)) for arg in own)
        # containerd's socket is made inside the exec-root: it must fit a Unix socket path.
        assert len(f"{engine.run_dir}/exec/containerd/containerd.sock") < UNIX_PATH_MAX
    finally:
        engine.stop()
    assert not engine.run_dir.exists()


def test_the_base_tarball_is_keyed_by_its_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    before = base.recipe_key()
    monkeypatch.setattr(base, "PACKAGES", (*base.PACKAGES, "libpq5"))
    assert base.recipe_key() != before


def test_the_base_image_is_keyed_by_the_ca_bundle_too() -> None:
    assert base.image_key(b"one bundle") != base.image_key(b"another bundle")
    assert base.image_key(b"one bundle") == base.image_key(b"one bundle")
