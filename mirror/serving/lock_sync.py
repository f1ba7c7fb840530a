"""The capability lock, the same on every replica within seconds, through the shared bucket.

The lock has two files (mirror.serving.capability_guard.LockPlaces): the reviewed lock people
approve and revoke in, and the trust-on-first-use records (in the replica's state directory).
Both are synced, each through an object of its own: `shared/capabilities.lock.yaml` and
`shared/capabilities.tofu.yaml`. The records have to be shared too: a replica that had not
seen a crate yet would otherwise take a later, more capable version as its first sighting and
serve what its peers block as capability creep (and a revoke, which removes the records on
the replica it ran on, would leave them on the others to come back with a re-approval).

Each file is polled every `lock_sync_interval` seconds with a HEAD. When the local file
changed, its changes are merged into the bucket's copy (mirror.policy.lock_merge) and the
result is written with If-Match on the ETag read, so two replicas writing at once cannot
overwrite each other: the loser reads again and merges again. When only the bucket's copy
changed, it is validated like a local lock file and written over the local file. A change
that arrives from the bucket bumps the replica's lock epoch, so every worker of the replica
reloads both files before its next decision (the same path `crate-mirror approve` takes).

One process per replica syncs: the workers of `serve --workers N` share the state directory,
and whichever holds the flock on `lock-sync.leader` there does the rounds (a worker that dies
releases it and another takes over).

A bucket copy that does not validate is refused (logged, the local lock stays in force); an
unreachable bucket only delays the sync. On its first sync a replica adopts the bucket's copy
as it is (an old lock from an image must not undo a revocation made since); with no copy
there yet, it writes its own.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import structlog

from mirror.epoch import bump_epoch
from mirror.errors import ConfigError, IntegrityError, StoreUnavailable
from mirror.files import HeldLock
from mirror.policy.capability_lock import CapabilityLock
from mirror.policy.lock_merge import merge_locks
from mirror.serving.capability_guard import LockPlaces
from mirror.sources.capability_lockfile import load_lock, update_lock
from mirror.store.s3 import Bucket

log = structlog.get_logger("mirror.lock_sync")
LOCK_KEY = "shared/capabilities.lock.yaml"  # the reviewed lock
TOFU_KEY = "shared/capabilities.tofu.yaml"  # the trust-on-first-use records
LEADER_NAME = "lock-sync.leader"  # in the state directory, beside the epoch file
MAX_LOCK_BYTES = 16 * 2**20  # bytes
CONFLICT_RETRIES = 5  # merges retried at once when another replica wrote in between


class LockFileSync:
    """One lock file kept in step with one object in the bucket."""

    def __init__(
        self, path: Path, bucket: Bucket, changed: Callable[[], None], key: str = LOCK_KEY
    ) -> None:
        self._path = path
        self._bucket = bucket
        self._changed = changed  # called after the local file took a change from the bucket
        self.key = key
        self._base: CapabilityLock | None = None  # the version last agreed with the bucket
        self._base_etag: str | None = None

    async def sync(self) -> str:
        """One round: "unchanged", "pulled", "pushed", "invalid" or "conflict"."""
        for _ in range(CONFLICT_RETRIES):
            outcome = await self._round()
            if outcome != "conflict":
                return outcome
        return "conflict"

    async def _round(self) -> str:
        try:
            ours = await asyncio.to_thread(load_lock, self._path)
        except ConfigError as e:  # being edited by hand, or broken: never spread it
            log.error("lock_sync.local_invalid", key=self.key, problems=str(e)[:2000])
            return "invalid"
        etag = await self._bucket.head(self.key)
        if etag is not None and etag == self._base_etag and ours == self._base:
            return "unchanged"
        theirs, etag = await self._read_bucket(etag)
        if theirs is None and etag is not None:
            return "invalid"
        if self._base is None and theirs is not None:
            # First sync of this process: the bucket's lock wins. A replica starting from an
            # image or a backup holds an old lock; merging it in as "our changes" would bring
            # back every approval revoked since (fail closed: an approval made here while the
            # replica was down is lost, and asked again).
            merged = theirs
        else:
            base = self._base if self._base is not None else CapabilityLock()
            merged = merge_locks(base, ours, theirs if theirs is not None else CapabilityLock())
        if theirs is None or merged != theirs:
            body = merged.render().encode()
            new_etag = await self._bucket.put(
                self.key,
                body,
                if_match=etag if etag is not None else None,
                if_none_match="*" if etag is None else None,
            )
            if new_etag is None:
                return "conflict"  # someone wrote first: read theirs and merge again
            etag = new_etag
            outcome = "pushed"
        else:
            outcome = "pulled" if merged != ours else "unchanged"
        if merged != ours:
            changed = await asyncio.to_thread(self._write_local, ours, merged)
            if not changed:
                return "conflict"  # the file changed under us: merge that change too
            log.info("lock_sync.updated", source="bucket", key=self.key, path=str(self._path))
            self._changed()
        self._base, self._base_etag = merged, etag
        return outcome

    async def _read_bucket(self, etag: str | None) -> tuple[CapabilityLock | None, str | None]:
        if etag is None:
            return None, None
        found = await self._bucket.get(self.key, MAX_LOCK_BYTES)
        if found is None:
            return None, None  # deleted between HEAD and GET: write ours
        body, etag = found
        try:
            return await asyncio.to_thread(self._parse, body), etag
        except ConfigError as e:
            log.error("lock_sync.bucket_copy_invalid", key=self.key, problems=str(e)[:2000])
            return None, etag

    def _parse(self, body: bytes) -> CapabilityLock:
        """Validate the bucket's copy exactly like a local lock file (line-numbered errors)."""
        self._path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            dir=self._path.parent, prefix=f".{self._path.name}.", suffix=".bucket"
        ) as tmp:
            tmp.write(body)
            tmp.flush()
            return load_lock(Path(tmp.name))

    def _write_local(self, expected: CapabilityLock, merged: CapabilityLock) -> bool:
        """Replace the local file with `merged` unless someone changed it since it was read
        (under the lock file's flock, like `approve`)."""
        wrote = False

        def change(current: CapabilityLock) -> CapabilityLock:
            nonlocal wrote
            wrote = current == expected
            return merged if wrote else current

        update_lock(self._path, change)
        return wrote


class LockSync:
    """Both files of a replica's capability lock, synced by one process of the replica."""

    def __init__(
        self, files: Sequence[LockFileSync], interval: float, leader: Path | None = None
    ) -> None:
        self.files = tuple(files)
        self._interval = interval
        self._leader = leader  # None: this process always syncs (tests, one process)
        self._held: HeldLock | None = None

    @classmethod
    def for_places(cls, places: LockPlaces, bucket: Bucket, interval: float) -> LockSync:
        """The sync of the lock a server runs with: a change pulled from the bucket bumps the
        epoch, so every worker reloads both files at once."""

        def changed() -> None:
            bump_epoch(places.epoch)

        files = (
            LockFileSync(places.reviewed, bucket, changed, LOCK_KEY),
            LockFileSync(places.recorded, bucket, changed, TOFU_KEY),
        )
        return cls(files, interval, places.epoch.with_name(LEADER_NAME))

    async def run(self) -> None:
        try:
            while True:
                if self._leading():
                    try:
                        await self.sync()
                    except (StoreUnavailable, IntegrityError) as e:
                        log.warning("lock_sync.failed", error=str(e))
                await asyncio.sleep(self._interval)
        finally:
            self._resign()

    async def sync(self) -> dict[str, str]:
        """One round for each file: its key and outcome (see `LockFileSync.sync`)."""
        return {part.key: await part.sync() for part in self.files}

    def _leading(self) -> bool:
        """Whether this process is the replica's syncer (takes the flock when it is free)."""
        if self._leader is None or self._held is not None:
            return True
        self._held = HeldLock.try_take(self._leader)  # None: another worker syncs
        return self._held is not None

    def _resign(self) -> None:
        if self._held is not None:
            self._held.release()
            self._held = None
