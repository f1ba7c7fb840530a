"""The capability lock, the same on every replica within seconds, through the shared bucket.

Each replica keeps the lock file its policy names (where `approve`, `revoke` and
trust-on-first-use write) and polls one object in the bucket (`shared/capabilities.lock.yaml`)
every `lock_sync_interval` seconds with a HEAD. When its file changed, it merges its changes
into the bucket's copy (mirror.policy.lock_merge) and writes the result with If-Match on the
ETag it read, so two replicas writing at once cannot overwrite each other: the loser reads
again and merges again. When only the bucket's copy changed, it is validated like a local lock
file and written over the local file. Either way a changed file is reloaded at once (the
policy reloader), so an approval made on one replica is in force on all of them within
about one interval.

A bucket copy that does not validate is refused (logged, the local lock stays in force); an
unreachable bucket only delays the sync. On its first sync a replica adopts the bucket's copy
as it is (an old lock from an image must not revoke a revocation); with no copy there yet, it
writes its own.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable
from pathlib import Path

import structlog

from mirror.errors import ConfigError, IntegrityError, StoreUnavailable
from mirror.policy.capability_lock import CapabilityLock
from mirror.policy.lock_merge import merge_locks
from mirror.sources.capability_lockfile import load_lock, update_lock
from mirror.store.s3 import Bucket

log = structlog.get_logger("mirror.lock_sync")
LOCK_KEY = "shared/capabilities.lock.yaml"
MAX_LOCK_BYTES = 16 * 2**20  # bytes
CONFLICT_RETRIES = 5  # merges retried at once when another replica wrote in between


class LockSync:
    def __init__(
        self, path: Path, bucket: Bucket, reload: Callable[[], None], interval: float
    ) -> None:
        self._path = path
        self._bucket = bucket
        self._reload = reload  # the policy reloader's `now`
        self._interval = interval
        self._base: CapabilityLock | None = None  # the version last agreed with the bucket
        self._base_etag: str | None = None

    async def run(self) -> None:
        while True:
            try:
                await self.sync()
            except (StoreUnavailable, IntegrityError) as e:
                log.warning("lock_sync.failed", error=str(e))
            await asyncio.sleep(self._interval)

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
            log.error("lock_sync.local_invalid", problems=str(e)[:2000])
            return "invalid"
        etag = await self._bucket.head(LOCK_KEY)
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
                LOCK_KEY,
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
            log.info("lock_sync.updated", source="bucket", key=LOCK_KEY)
            self._reload()
        self._base, self._base_etag = merged, etag
        return outcome

    async def _read_bucket(self, etag: str | None) -> tuple[CapabilityLock | None, str | None]:
        if etag is None:
            return None, None
        found = await self._bucket.get(LOCK_KEY, MAX_LOCK_BYTES)
        if found is None:
            return None, None  # deleted between HEAD and GET: write ours
        body, etag = found
        try:
            return await asyncio.to_thread(self._parse, body), etag
        except ConfigError as e:
            log.error("lock_sync.bucket_copy_invalid", key=LOCK_KEY, problems=str(e)[:2000])
            return None, etag

    def _parse(self, body: bytes) -> CapabilityLock:
        """Validate the bucket's copy exactly like a local lock file (line-numbered errors)."""
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
