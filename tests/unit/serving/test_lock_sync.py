"""The capability lock through the bucket: an approval on one replica is in force on the
others within seconds; concurrent changes merge; a bad copy is never spread; both files of
the lock (reviewed, first-use records) travel and a pulled change bumps the epoch."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mirror.epoch import Epoch
from mirror.policy.capability_lock import TOFU_APPROVER, CapabilityLock, revocation
from mirror.scan.report import Capability
from mirror.serving.capability_guard import LockPlaces
from mirror.serving.lock_sync import LOCK_KEY, TOFU_KEY, LockFileSync, LockSync
from mirror.sources.capability_lockfile import (
    EPOCH_NAME,
    load_lock,
    save_lock,
    update_lock,
)
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
        self.interval = interval
        self.sync = LockFileSync(self.lock, self.client, self._reloaded)

    async def run(self) -> None:
        while True:
            await self.sync.sync()
            await asyncio.sleep(self.interval)

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
    tasks = [asyncio.ensure_future(r.run()) for r in (a, b)]
    try:
        await asyncio.sleep(0.5)  # both agreed on the empty lock
        a.approve("serde", Capability.PROC_MACRO)
        started = time.monotonic()
        # The file arrives, and the server is told (the epoch, in a server) right after: the
        # file is written on a thread, so the two are seen a moment apart.
        while "serde" not in b.crates() or b.reloads < 1:
            assert time.monotonic() - started < 5.0, "the approval did not arrive"
            await asyncio.sleep(0.05)
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


def _places(root: Path) -> LockPlaces:
    state = root / "cache" / "state"
    return LockPlaces(
        reviewed=root / "policy" / "capabilities.lock.yaml",
        recorded=state / "capabilities.tofu.yaml",
        epoch=state / EPOCH_NAME,
        cache_dir=root / "cache",
        audit_dir=root / "cache" / "audit",
    )


def _client(bucket: TestBucket) -> S3Client:
    location = S3Location.of(bucket.name, bucket.endpoint, "us-east-1", "", "path")
    return S3Client(location, Credentials(ACCESS_KEY, SECRET_KEY))


def _first_use(lock: CapabilityLock, name: str) -> CapabilityLock:
    return lock.with_approval(name, None, {Capability.NET}, TOFU_APPROVER, "first seen", WHEN)


async def test_a_server_syncs_the_reviewed_lock_and_first_use_records_and_bumps_the_epoch(
    s3_bucket: TestBucket, tmp_path: Path
) -> None:
    """Both files of the lock travel, each through its own object; what B pulls bumps B's
    epoch, the counter every worker of B checks before each decision."""
    pa, pb = _places(tmp_path / "a"), _places(tmp_path / "b")
    client = _client(s3_bucket)
    a = LockSync.for_places(pa, client, 0.2)
    b = LockSync.for_places(pb, client, 0.2)
    try:
        assert await b.sync() == {LOCK_KEY: "pushed", TOFU_KEY: "pushed"}  # empty copies
        epoch = Epoch(pb.epoch)
        before = epoch.read()
        update_lock(pa.reviewed, lambda lock: lock.with_approval(
            "serde", None, {Capability.PROC_MACRO}, "alice", "reviewed", WHEN))  # fmt: skip
        update_lock(pa.recorded, lambda lock: _first_use(lock, "itoa"))
        assert await a.sync() == {LOCK_KEY: "pulled", TOFU_KEY: "pulled"}  # first: adopt
        update_lock(pa.reviewed, lambda lock: lock.with_approval(
            "serde", None, {Capability.PROC_MACRO}, "alice", "reviewed", WHEN))  # fmt: skip
        update_lock(pa.recorded, lambda lock: _first_use(lock, "itoa"))
        assert await a.sync() == {LOCK_KEY: "pushed", TOFU_KEY: "pushed"}
        assert epoch.read() == before
        assert await b.sync() == {LOCK_KEY: "pulled", TOFU_KEY: "pulled"}
        assert epoch.read() != before  # every worker of B reloads before its next decision
        assert set(load_lock(pb.reviewed).crates) == {"serde"}
        assert set(load_lock(pb.recorded).crates) == {"itoa"}
        # A revoke on A: tombstone in the reviewed lock, first-use records gone; both arrive.
        tombstone = revocation("alice", "compromised", WHEN)
        update_lock(pa.recorded, lambda lock: lock.without("itoa"))
        update_lock(pa.reviewed, lambda lock: lock.without("itoa", revoked=tombstone))
        await a.sync()
        await b.sync()
        assert load_lock(pb.reviewed).revocation("itoa") == tombstone
        assert "itoa" not in load_lock(pb.recorded).crates
        assert b"itoa" not in s3_bucket.read(TOFU_KEY)
    finally:
        await client.close()


class CountingBucket:
    """The real client, counting the HEADs that start each round."""

    def __init__(self, client: S3Client) -> None:
        self.client = client
        self.heads = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    async def head(self, key: str) -> str | None:
        self.heads += 1
        return await self.client.head(key)


async def test_one_process_of_a_replica_syncs_and_another_takes_over_when_it_stops(
    s3_bucket: TestBucket, tmp_path: Path
) -> None:
    """Workers of one replica share its state directory: only the holder of the leader
    flock polls the bucket (not N workers times a HEAD a second); when it stops, the next
    one does."""
    places = _places(tmp_path / "a")
    client = _client(s3_bucket)
    first, second = CountingBucket(client), CountingBucket(client)
    one = asyncio.ensure_future(LockSync.for_places(places, first, 0.05).run())
    await asyncio.sleep(0.3)
    two = asyncio.ensure_future(LockSync.for_places(places, second, 0.05).run())
    try:
        await asyncio.sleep(0.5)
        assert first.heads >= 2 and second.heads == 0
        one.cancel()
        await asyncio.gather(one, return_exceptions=True)
        started = time.monotonic()
        while second.heads == 0:
            assert time.monotonic() - started < 5.0, "nobody took over"
            await asyncio.sleep(0.05)
    finally:
        for task in (one, two):
            task.cancel()
        await asyncio.gather(one, two, return_exceptions=True)
        await client.close()
