"""Real cargo builds through the mirror: online, then offline from the mirror's cache alone."""

from __future__ import annotations

import time
import tomllib
import urllib.request
from pathlib import Path

import pytest

from mirror.index import index_path
from mirror.store.filesystem import FilesystemStore
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


def test_cargo_asks_over_http2_and_a_refusal_still_explains_itself(
    tmp_path: Path, debian_registry: Registry
) -> None:
    """cargo offers HTTP/2 on every connection; with `http2: always` the mirror takes it even
    on loopback. cargo fetches through it, and prints a 403's explanation as over HTTP/1.1."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "version: 2\nrules:\n  deny: {mode: block}\n"
        "deny:\n  - crate: rust_decimal\n    reason: not on this project\n"
    )
    env = {"CRATE_MIRROR_HTTP2": "always"}
    with FakeUpstream(debian_registry).in_thread() as upstream:
        mirror = MirrorProcess(
            tmp_path / "cache", upstream=upstream.url + "/", policy=policy, env=env
        ).start()
        try:
            refused = CargoProject(tmp_path / "refused", mirror.index_url, PROJECT_DEPS)
            result = refused.generate_lockfile()
            assert result.returncode != 0
            assert "403" in result.stderr and "not on this project" in result.stderr
            deps = {k: v for k, v in PROJECT_DEPS.items() if k != "rust_decimal"}
            project = CargoProject(tmp_path / "project", mirror.index_url, deps)
            _ok(project.generate_lockfile())
            _ok(project.fetch())
            assert len(project.lock_versions()) >= 10
            metrics = urllib.request.urlopen(mirror.index_url.split("/index")[0] + "/metrics")
            text = metrics.read().decode()
            upgraded = [
                line
                for line in text.splitlines()
                if line.startswith("crate_mirror_http2_connections_total ")
            ]
            assert upgraded and float(upgraded[0].split()[1]) >= 2
        finally:
            mirror.stop()


def test_from_a_distant_upstream_the_crates_are_fetched_while_cargo_resolves(
    tmp_path: Path, debian_registry: Registry
) -> None:
    """With crates.io 10 ms away, the crates a build will download are in the mirror's cache
    by the time cargo has resolved: `generate-lockfile` downloads nothing, yet every locked
    crate is there, verified (mirror/serving/look_ahead.py)."""
    cache = tmp_path / "mirror-cache"
    with FakeUpstream(debian_registry, latency=0.01).in_thread() as upstream:
        mirror = MirrorProcess(cache, upstream=upstream.url + "/").start()
        try:
            # A few answers first, so the mirror knows how far upstream is from the start.
            warm_up = ("glob", "either", "lazy_static", "scopeguard")  # none in the lock
            for name in warm_up:
                with urllib.request.urlopen(f"{mirror.index_url}/{index_path(name)}") as r:
                    assert r.status == 200
            project = CargoProject(tmp_path / "project", mirror.index_url, PROJECT_DEPS)
            _ok(project.generate_lockfile())
            lock = tomllib.loads((project.dir / "Cargo.lock").read_text())
            locked = {p["checksum"]: p["name"] for p in lock["package"] if "checksum" in p}
            assert len(locked) >= 10
            store = FilesystemStore(cache)
            deadline = time.monotonic() + 30  # the crates go to disk once the mirror is quiet
            while set(locked) - set(store.iter_crates()) and time.monotonic() < deadline:
                time.sleep(0.1)
            missing = sorted(locked[c] for c in set(locked) - set(store.iter_crates()))
            assert missing == []
            downloads = [r.path for r in upstream.requests.all() if r.path.endswith("/download")]
            assert len(downloads) == len(set(downloads))  # each at most once
            # Nothing else: the locked crates, and those of the index files asked for above.
            fetched = {path.split("/")[4] for path in downloads}
            assert fetched - set(locked.values()) <= set(warm_up)
        finally:
            mirror.stop()
