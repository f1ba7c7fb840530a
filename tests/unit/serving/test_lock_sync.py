"""The capability lock through the bucket: an approval on one replica is in force on the
others within seconds; concurrent changes merge; a bad copy is never spread."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

from mirror.policy.capability_lock import CapabilityLock
from mirror.scan.report import Capability
from mirror.serving.lock_sync import LOCK_KEY, LockSync
from mirror.sources.capability_lockfile import load_lock, save_lock, update_lock
from mirror.upstream.s3 import S3Client, S3Location
from mirror.upstream.sigv4 import Credentials
from tests.fixtures.object_store import ACCESS_KEY, SECRET_KEY, TestBucket

WHEN = datetime(2026, 11, 27, tzinfo=UTC)


class Replica:
    def __init__(self, root: Path, bucket: TestBucket, interval: float = 0.2) -> None:
        self.lock = root / "policy" / "capabilities.lock.yaml"
        self.lock.parent.mkdir(parents=True)
        save_lock(CapabilityLock(), self.lock)
        location = S3Location.of(bucket.name, bucket.endpoint, "us-east-1", "", "path")
        self.client = S3Client(location, Credentials(ACCESS_KEY, SECRET_KEY))
        self.reloads = 0
        self.sync = LockSync(self.lock, self.client, self._reloaded, interval)

    def _reloaded(self) -> None:
        self.reloads += 1

    def approve(self, name: str, cap: Capability) -> None:
        update_lock(self.lock, lambda lock: lock.with_approval(name, None, {cap}, "me", "ok", WHEN))

    def crates(self) -> set[str]:
        return set(load_lock(self.lock).crates)


async def test_an_approval_reaches_the_other_replica_within_seconds(
    s3_bucket: TestBucket, tmp_path: Path
) -> None:
    a, b = Replica(tmp_path / "a", s3_bucket), Replica(tmp_path / "b", s3_bucket)
    tasks = [asyncio.ensure_future(r.sync.run()) for r in (a, b)]
    try:
        await asyncio.sleep(0.5)  # both agreed on the empty lock
        a.approve("serde", Capability.PROC_MACRO)
        started = time.monotonic()
        while "serde" not in b.crates():
            assert time.monotonic() - started < 5.0, "the approval did not arrive"
            await asyncio.sleep(0.05)
        assert b.reloads >= 1  # and the policy was reloaded with it at once
        b.approve("libc", Capability.FFI)  # and back
        while "libc" not in a.crates():
            assert time.monotonic() - started < 10.0
            await asyncio.sleep(0.05)
    finally:
        for task in tasks:
            task.cancel()
        for r in (a, b):
            await r.client.close()
    assert a.crates() == b.crates() == {"serde", "libc"}


async def test_concurrent_changes_and_a_revocation_merge(
    s3_bucket: TestBucket, tmp_path: Path
) -> None:
    """Both replicas change their lock before either syncs; a revoke stays revoked."""
    a, b = Replica(tmp_path / "a", s3_bucket), Replica(tmp_path / "b", s3_bucket)
    try:
        a.approve("itoa", Capability.UNSAFE)
        assert await a.sync.sync() == "pushed"
        assert await b.sync.sync() == "pulled"
        a.approve("serde", Capability.PROC_MACRO)
        update_lock(b.lock, lambda lock: lock.without("itoa"))
        b.approve("libc", Capability.FFI)
        assert await a.sync.sync() == "pushed"
        assert await b.sync.sync() == "pushed"  # merged onto a's version (If-Match)
        assert await a.sync.sync() == "pulled"
        assert a.crates() == b.crates() == {"serde", "libc"}
        assert await a.sync.sync() == "unchanged"
    finally:
        for r in (a, b):
            await r.client.close()


async def test_an_invalid_copy_is_never_spread(s3_bucket: TestBucket, tmp_path: Path) -> None:
    """A broken lock in the bucket is refused (the local lock stays in force), and a broken
    local file (being edited by hand) is not pushed."""
    a = Replica(tmp_path / "a", s3_bucket)
    try:
        a.approve("itoa", Capability.UNSAFE)
        s3_bucket.write(LOCK_KEY, b"version: 1\ncrates:\n  itoa: [{capabilities: [teleport]}]\n")
        assert await a.sync.sync() == "invalid"
        assert a.crates() == {"itoa"}
        a.lock.write_text("version: [broken")
        assert await a.sync.sync() == "invalid"
        assert b"teleport" in s3_bucket.read(LOCK_KEY)  # nothing of ours went up
    finally:
        await a.client.close()


async def test_a_replica_starting_with_an_old_lock_does_not_bring_back_a_revocation(
    s3_bucket: TestBucket, tmp_path: Path
) -> None:
    """B starts from an image whose seed lock still approves itoa, revoked since on A: B
    adopts the bucket's lock on its first sync instead of merging the stale approval back."""
    a = Replica(tmp_path / "a", s3_bucket)
    b = Replica(tmp_path / "b", s3_bucket)
    try:
        a.approve("itoa", Capability.UNSAFE)
        b.approve("itoa", Capability.UNSAFE)  # the same seed in B's image
        a.approve("serde", Capability.PROC_MACRO)
        assert await a.sync.sync() == "pushed"
        update_lock(a.lock, lambda lock: lock.without("itoa"))  # revoked on A
        assert await a.sync.sync() == "pushed"
        assert await b.sync.sync() == "pulled"  # B's first sync
        assert b.crates() == {"serde"} and b"itoa" not in s3_bucket.read(LOCK_KEY)
        b.approve("libc", Capability.FFI)  # later changes on B do go up
        assert await b.sync.sync() == "pushed"
        assert b"libc" in s3_bucket.read(LOCK_KEY)
    finally:
        for r in (a, b):
            await r.client.close()
