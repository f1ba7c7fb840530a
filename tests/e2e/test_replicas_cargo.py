"""Two replicas, one bucket, real cargo (issue 14's first "done when"): a project of 145+
crates is fetched through replica A; with upstream stopped, replica B serves all of it to a
fresh cargo home; every byte cargo got is checked against the registry; both replicas' audit
chains verify and read together."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cargo_project import CargoProject
from tests.fixtures.object_store import ACCESS_KEY, SECRET_KEY, TestBucket
from tests.fixtures.registry import Registry, every_version_deps
from tests.fixtures.upstream import FakeUpstream
from tests.mirror_process import MirrorProcess

pytestmark = pytest.mark.e2e
MIN_CRATES = 145  # the project size


def _replica_env(bucket: TestBucket, replica: str, audit: Path) -> dict[str, str]:
    """Credentials from the usual AWS variables, the rest from CRATE_MIRROR_* ones."""
    return {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "CRATE_MIRROR_S3_BUCKET": bucket.name,
        "CRATE_MIRROR_S3_ENDPOINT": bucket.endpoint,
        "CRATE_MIRROR_REPLICA_ID": replica,
        "CRATE_MIRROR_AUDIT_DIR": str(audit),
        "CRATE_MIRROR_LOG_FORMAT": "json",
    }


def _ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stderr[-5000:]


def _downloaded(cargo_home: Path) -> dict[str, bytes]:
    """Every .crate cargo keeps in its cache, by file name (NAME-VERSION.crate)."""
    return {p.name: p.read_bytes() for p in (cargo_home / "registry" / "cache").rglob("*.crate")}


def test_replica_b_serves_what_replica_a_fetched_with_upstream_stopped(
    tmp_path: Path, debian_registry: Registry, s3_bucket: TestBucket
) -> None:
    audit = tmp_path / "audit"
    deps = every_version_deps(debian_registry)
    with FakeUpstream(debian_registry).in_thread() as upstream:
        a = MirrorProcess(
            tmp_path / "a" / "cache",
            upstream=upstream.url + "/",
            env=_replica_env(s3_bucket, "replica-a", audit),
        ).start()
        try:
            project = CargoProject(tmp_path / "project", a.index_url, deps, name="replicas-app")
            _ok(project.generate_lockfile())
            _ok(project.fetch())
        finally:
            a.stop()  # SIGTERM: pending uploads finish before it exits
        upstream_url = upstream.url
    locked = project.lock_versions()
    total = sum(len(v) for v in locked.values())
    assert total >= MIN_CRATES, f"the project locks only {total} crates"
    assert len(s3_bucket.objects("crates/")) == total

    # Upstream is gone. B has never seen a request and has an empty cache.
    b = MirrorProcess(
        tmp_path / "b" / "cache",
        upstream=upstream_url + "/",
        env=_replica_env(s3_bucket, "replica-b", audit),
    ).start()
    try:
        project.registry_url = b.index_url
        project.wipe_cargo_home()
        _ok(project.fetch())
    finally:
        b.stop()

    # Every byte: each crate cargo got from B is the registry's, and all of them came.
    got = _downloaded(project.cargo_home)
    assert len(got) == total
    for name, versions in locked.items():
        for version in versions:
            expected = debian_registry.crate_bytes(name, version)
            data = got[f"{name}-{version}.crate"]
            assert hashlib.sha256(data).digest() == hashlib.sha256(expected).digest(), name
    assert len(list((tmp_path / "b" / "cache" / "crates").rglob("*.crate"))) == total

    # Each replica kept its own chain; verify and query read them together.
    cli = [sys.executable, "-m", "mirror", "audit"]
    verify = subprocess.run([*cli, "verify", "--dir", str(audit)], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "[replica-a] OK" in verify.stdout and "[replica-b] OK" in verify.stdout
    query = subprocess.run(
        [*cli, "query", "--dir", str(audit), "--json", "--action", "allow"],
        capture_output=True,
        text=True,
    )
    replicas = {json.loads(line).get("replica") for line in query.stdout.splitlines()}
    assert replicas == {"replica-a", "replica-b"}
    # The secret key was in both replicas' environment; it is in neither log.
    for log in (tmp_path / "a" / "mirror-*.log", tmp_path / "b" / "mirror-*.log"):
        for path in log.parent.glob(log.name):
            assert SECRET_KEY not in path.read_text(errors="replace")
