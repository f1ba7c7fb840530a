"""An approval made on one replica is in force on another within seconds (issue 14): two
`serve` processes with their own policy directories share the capability lock through the
bucket."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from mirror.index import index_path
from mirror.sources.capability_lockfile import load_lock
from tests import REPO
from tests.fixtures.object_store import ACCESS_KEY, SECRET_KEY, TestBucket
from tests.fixtures.registry import Registry
from tests.fixtures.upstream import FakeUpstream
from tests.mirror_process import MirrorProcess

pytestmark = pytest.mark.slow
POLICY = "version: 2\nrules:\n  capabilities: {mode: block, first_seen: require-approval}\n"
WITHIN = 10.0  # seconds; the sync polls every second, the reload follows at once


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def _replica(root: Path, upstream: str, bucket: TestBucket, replica: str) -> MirrorProcess:
    policy = root / "policy" / "policy.yaml"
    policy.parent.mkdir(parents=True)
    policy.write_text(POLICY)
    env = {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "CRATE_MIRROR_S3_BUCKET": bucket.name,
        "CRATE_MIRROR_S3_ENDPOINT": bucket.endpoint,
        "CRATE_MIRROR_REPLICA_ID": replica,
    }
    return MirrorProcess(root / "cache", upstream=upstream, policy=policy, env=env).start()


def test_an_approval_on_one_replica_reaches_the_other_within_seconds(
    small_registry: Registry, s3_bucket: TestBucket, tmp_path: Path
) -> None:
    version = small_registry.versions("itoa")[-1]
    download = f"/api/v1/crates/itoa/{version}/download"
    with FakeUpstream(small_registry).in_thread() as upstream:
        a = _replica(tmp_path / "a", upstream.url + "/", s3_bucket, "a")
        b = _replica(tmp_path / "b", upstream.url + "/", s3_bucket, "b")
        try:
            for replica in (a, b):
                assert _status(replica.index_url + "/" + index_path("itoa")) == 200
                assert _status(replica.url + download) == 403  # held back: not approved
            approve = subprocess.run(
                [sys.executable, "-m", "mirror", "approve", f"itoa@{version}",
                 "--lock", str(tmp_path / "a" / "policy" / "capabilities.lock.yaml"),
                 "--cache-dir", str(tmp_path / "a" / "cache"),
                 "--audit-dir", str(tmp_path / "a" / "cache" / "audit" / "a"),
                 "--reason", "reviewed: formatting only"],
                capture_output=True, text=True, timeout=60, check=False, cwd=REPO,
            )  # fmt: skip
            assert approve.returncode == 0, approve.stderr
            approved = time.monotonic()
            while _status(b.url + download) != 200:
                assert time.monotonic() - approved < WITHIN, b.log()
                time.sleep(0.2)
            lock_b = load_lock(tmp_path / "b" / "policy" / "capabilities.lock.yaml")
            assert "itoa" in lock_b.crates
        finally:
            a.stop()
            b.stop()
