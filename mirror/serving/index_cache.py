"""Index files: memory first, then disk, then upstream; fresh for a TTL, stale when upstream fails.

A warm hit is one dict lookup and one clock read. Everything derived from an index file's
content (parsing, the policy-filtered body, its ETag) hangs off the `IndexEntry` (`views`) and
is computed once per content version, never per request.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog

from mirror import metrics
from mirror.errors import (
    MirrorError,
    NotFound,
    StorageError,
    StoreUnavailable,
    UpstreamError,
    UpstreamUnavailable,
)
from mirror.index import IndexFile
from mirror.serving.singleflight import SingleFlight
from mirror.serving.views import DerivedViews
from mirror.store import CachedIndex, Store
from mirror.upstream.client import Upstream

log = structlog.get_logger("mirror.index")
MAX_REMEMBERED_404S = 100_000  # names whose upstream 404 is remembered at once

# Verifies a freshly fetched body (TUF); returns the unix time its verification expires.
Verifier = Callable[[str, bytes], Awaitable[float | None]]


@dataclass
class IndexEntry:
    name: str
    index: IndexFile
    etag: str | None  # upstream validators
    last_modified: str | None
    fresh_until: float  # monotonic deadline; after it we ask upstream again
    verified_until: float | None = None  # unix time; None when no TUF is configured
    stale_reason: str | None = None  # set when served after an upstream failure
    first_seen: float | None = None  # unix time this mirror first fetched this crate's index
    views: DerivedViews = field(default_factory=DerivedViews)  # derived from this content


class IndexCache:
    def __init__(
        self,
        store: Store,
        upstream: Upstream | None,
        *,
        ttl: float,
        negative_ttl: float,
        verifier: Verifier | None = None,
        memory_budget: int = 64 * 2**20,  # bytes of index files held in memory (LRU)
    ) -> None:
        self._store = store
        self._upstream = upstream  # None means offline: never contact upstream
        self._ttl = ttl
        self._negative_ttl = negative_ttl
        self._verifier = verifier
        self._entries = _BoundedEntries(memory_budget)
        self._missing: dict[str, float] = {}  # name -> monotonic deadline of a remembered 404
        self._flights: SingleFlight[IndexEntry] = SingleFlight()

    @property
    def offline(self) -> bool:
        return self._upstream is None

    async def get(self, name: str) -> IndexEntry:
        """The current index file for `name`; raises NotFound or UpstreamError."""
        now = time.monotonic()
        entry = self._entries.get(name)
        if entry is not None and now < entry.fresh_until and _still_verified(entry):
            metrics.cache_counter("index", "hit").inc()
            return entry
        if self._missing.get(name, 0.0) > now:
            raise NotFound(f"crate `{name}` does not exist upstream")
        # Many requests for the same stale name share one upstream round trip.
        return await self._flights.run(name, lambda: self._refresh(name, entry))

    @staticmethod
    def is_fresh(entry: IndexEntry) -> bool:
        """Whether `get` would return this entry without asking anyone."""
        return time.monotonic() < entry.fresh_until and _still_verified(entry)

    async def _refresh(self, name: str, entry: IndexEntry | None) -> IndexEntry:
        disk = None
        shared_error: StoreUnavailable | None = None  # the bucket of a shared store is down
        if entry is None or self._upstream is None:
            # Offline, the disk is the only source, and `import` may have changed it.
            try:
                disk = await asyncio.to_thread(self._store.read_index, name)
            except StoreUnavailable as e:
                shared_error = e
            if disk is not None and disk.shared and self._verifier is not None:
                disk = await self._verify_shared(name, disk)
        if self._upstream is None:
            if disk is None and entry is None and shared_error is not None:
                raise StoreUnavailable(f"`{name}` is not cached here: {shared_error}")
            if disk is None and entry is not None:
                entry.fresh_until = time.monotonic() + self._ttl
                return entry
            if disk is None:
                raise NotFound(
                    f"crate `{name}` is not in this offline mirror; add it on a connected "
                    "mirror with `crate-mirror prefetch` and `crate-mirror export`, then "
                    "`crate-mirror import` the bundle here"
                )
            if entry is not None and entry.index.raw == disk.body:
                entry.fresh_until = time.monotonic() + self._ttl
                return entry  # unchanged: keep the derived views
            return self._remember(name, disk, fresh=True)

        if (
            disk is not None
            and time.time() - disk.fetched_at < self._ttl
            and (disk.verified_until is None or time.time() < disk.verified_until)
        ):
            metrics.cache_counter("index", "hit").inc()
            return self._remember(name, disk, fresh=True)  # another worker fetched it just now

        known = entry if entry is not None else (self._from_disk(name, disk) if disk else None)
        try:
            fetch = await self._upstream.fetch_index(
                name,
                known.etag if known else None,
                known.last_modified if known else None,
            )
        except UpstreamError as e:
            if known is None and shared_error is not None:
                raise StoreUnavailable(
                    f"`{name}` is not cached here, the shared store failed ({shared_error}) "
                    f"and so did upstream ({e})"
                ) from e
            return self._stale_or_raise(name, known, e)

        if fetch.status == 404:
            if len(self._missing) >= MAX_REMEMBERED_404S:
                self._missing.clear()  # random names must not grow memory without bound
            self._missing[name] = time.monotonic() + self._negative_ttl
            self._entries.pop(name)
            raise NotFound(f"crate `{name}` does not exist upstream")
        if fetch.status == 304 and known is not None:
            metrics.cache_counter("index", "revalidated").inc()
            known.fresh_until = time.monotonic() + self._ttl
            known.stale_reason = None
            # Time-dependent rules (release age) are re-judged per TTL; the risk judgement
            # expires by itself when one of its age signals does.
            known.views.clear(keep_risk=True)
            if self._verifier is not None:
                # The copy is unchanged, but it is only trusted under current metadata.
                known.verified_until = await self._verifier(name, known.index.raw)
            await self._persist(name, known, known.index.raw)
            self._entries.put(name, known)
            return known

        metrics.cache_counter("index", "miss").inc()
        verified_until = None
        if self._verifier is not None:
            verified_until = await self._verifier(name, fetch.body)  # raises TrustError
        fresh = IndexEntry(
            name=name,
            index=IndexFile.parse(fetch.body),
            etag=fetch.etag,
            last_modified=fetch.last_modified,
            fresh_until=time.monotonic() + self._ttl,
            verified_until=verified_until,
            first_seen=(known.first_seen if known is not None else None) or time.time(),
        )
        await self._persist(name, fresh, fetch.body)
        self._entries.put(name, fresh)
        return fresh

    async def _verify_shared(self, name: str, disk: CachedIndex) -> CachedIndex | None:
        """A copy another replica stored passed its record check, not TUF: verify it here
        before serving it (fail closed: a copy that cannot be verified now is not used)."""
        assert self._verifier is not None
        try:
            verified_until = await self._verifier(name, disk.body)
        except MirrorError as e:
            log.error("index.shared_copy_rejected", crate=name, error=str(e))
            return None
        return dataclasses.replace(disk, verified_until=verified_until, shared=False)

    def _stale_or_raise(
        self, name: str, known: IndexEntry | None, error: UpstreamError
    ) -> IndexEntry:
        """stale-if-error: keep builds working through an upstream outage."""
        if known is None:
            raise UpstreamUnavailable(
                f"upstream failed and `{name}` is not cached: {error}"
            ) from error
        if known.verified_until is not None and time.time() > known.verified_until:
            # Fail closed: the metadata that vouched for this copy has expired (freeze attack).
            raise UpstreamUnavailable(
                f"upstream failed and the cached `{name}` is no longer covered by valid "
                f"TUF metadata: {error}"
            ) from error
        metrics.cache_counter("index", "stale").inc()
        log.warning("index.stale", crate=name, error=str(error))
        # Try upstream again soon, not on every request of a busy build.
        known.fresh_until = time.monotonic() + min(self._ttl, 5.0)
        known.stale_reason = str(error)
        self._entries.put(name, known)
        return known

    async def _persist(self, name: str, entry: IndexEntry, body: bytes) -> None:
        record = CachedIndex(
            body=body,
            etag=entry.etag,
            last_modified=entry.last_modified,
            fetched_at=time.time(),
            verified_until=entry.verified_until,
            first_seen=entry.first_seen,
        )
        try:
            await asyncio.to_thread(self._store.write_index, name, record)
        except StorageError as e:
            # Serving from memory still works; the next process start just refetches.
            log.error("index.persist_failed", crate=name, error=str(e))

    def _remember(self, name: str, disk: CachedIndex, *, fresh: bool) -> IndexEntry:
        entry = self._from_disk(name, disk)
        if fresh:
            remaining = self._ttl - (time.time() - disk.fetched_at)
            if self._upstream is None:
                remaining = self._ttl  # offline: age means nothing, only `import` changes it
            entry.fresh_until = time.monotonic() + max(remaining, 0.0)
        self._entries.put(name, entry)
        return entry

    @staticmethod
    def _from_disk(name: str, disk: CachedIndex) -> IndexEntry:
        return IndexEntry(
            name=name,
            index=IndexFile.parse(disk.body),
            etag=disk.etag,
            last_modified=disk.last_modified,
            fresh_until=0.0,
            verified_until=disk.verified_until,
            first_seen=disk.first_seen,
        )


def _still_verified(entry: IndexEntry) -> bool:
    """A copy verified by TUF is served only while the metadata that verified it is valid."""
    return entry.verified_until is None or time.time() < entry.verified_until


class _BoundedEntries:
    """Index entries by name, least recently used evicted past a byte budget.

    Evicting only costs a disk read (the store keeps every file), so the budget bounds
    memory under a scan of many names without hurting the few hundred a build uses.
    """

    def __init__(self, budget: int) -> None:
        self._budget = budget
        self._entries: OrderedDict[str, IndexEntry] = OrderedDict()
        self._size = 0

    def get(self, name: str) -> IndexEntry | None:
        entry = self._entries.get(name)
        if entry is not None:
            self._entries.move_to_end(name)
        return entry

    def put(self, name: str, entry: IndexEntry) -> None:
        self.pop(name)
        self._entries[name] = entry
        self._size += len(entry.index.raw)
        while self._size > self._budget and len(self._entries) > 1:
            _, evicted = self._entries.popitem(last=False)
            self._size -= len(evicted.index.raw)

    def pop(self, name: str) -> None:
        old = self._entries.pop(name, None)
        if old is not None:
            self._size -= len(old.index.raw)
