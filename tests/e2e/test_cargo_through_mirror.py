"""Real cargo builds through the mirror: online, then offline from the mirror's cache alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cargo_project import CargoProject, Dependencies
from tests.fixtures.registry import Registry
from tests.fixtures.upstream import FakeUpstream
from tests.mirror_process import MirrorProcess

pytestmark = pytest.mark.e2e

PROJECT_DEPS: Dependencies = {
    "serde": {"version": "1", "features": ["derive"]},
    "serde_json": "1",
    "rust_decimal": "1",
    "rand": "0.8",
}


def _ok(result: object) -> None:
    assert getattr(result, "returncode", 1) == 0, getattr(result, "stderr", "")


def test_cargo_fetches_online_then_builds_offline(
    tmp_path: Path, debian_registry: Registry
) -> None:
    """The issue's end-to-end: fetch through the mirror, lose upstream, build from cache."""
    cache = tmp_path / "mirror-cache"
    with FakeUpstream(debian_registry).in_thread() as upstream:
        mirror = MirrorProcess(cache, upstream=upstream.url + "/").start()
        try:
            project = CargoProject(tmp_path / "online", mirror.index_url, PROJECT_DEPS)
            _ok(project.generate_lockfile())
            _ok(project.fetch())
            locked = project.lock_versions()
            assert {"serde", "serde_derive", "serde_json", "rust_decimal", "rand"} <= set(locked)
            downloads = upstream.requests.count("download")
            assert downloads >= len(locked) - 1
        finally:
            mirror.stop()

    # Upstream is gone now. A fresh machine (empty CARGO_HOME) builds from the mirror alone.
    offline = MirrorProcess(cache, offline=True).start()
    try:
        project.registry_url = offline.index_url
        project.wipe_cargo_home()
        _ok(project.fetch())
        _ok(project.build_offline())
    finally:
        offline.stop()
