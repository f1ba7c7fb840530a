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
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import NoReturn

import structlog

from mirror import metrics
from mirror.epoch import Epoch
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
from mirror.serving.write_behind import WriteBehind
from mirror.store import CachedIndex, Store
from mirror.upstream.client import IndexFetch, Upstream

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
    looked_ahead: bool = False  # its dependencies' index files were fetched (look_ahead.py)
    crates_ahead: bool = False  # its crate was fetched ahead, or found not worth it (same)


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
        writes: WriteBehind | None = None,
        imports: Epoch | None = None,  # offline: bumped by each `crate-mirror import`
    ) -> None:
        self._store = store
        self._upstream = upstream  # None means offline: never contact upstream
        self._ttl = ttl
        self._negative_ttl = negative_ttl
        self._verifier = verifier
        self._entries = _BoundedEntries(memory_budget)
        self._missing: dict[str, float] = {}  # name -> monotonic deadline of a remembered 404
        self._flights: SingleFlight[IndexEntry] = SingleFlight()
        self._rechecks: SingleFlight[IndexEntry] = SingleFlight()  # apart: never a 304 to share
        self._unsaved: dict[str, CachedIndex] = {}  # newest copy per name not yet on disk
        self._writes = writes if writes is not None else WriteBehind()
        self._imports = imports
        self._imports_seen = imports.read() if imports is not None else 0

    @property
    def offline(self) -> bool:
        return self._upstream is None

    async def get(self, name: str) -> IndexEntry:
        """The current index file for `name`; raises NotFound or UpstreamError."""
        self._imported()
        now = time.monotonic()
        entry = self._entries.get(name)
        if entry is not None and now < entry.fresh_until and _still_verified(entry):
            metrics.cache_counter("index", "hit").inc()
            return entry
        if self._missing.get(name, 0.0) > now:
            raise NotFound(f"crate `{name}` does not exist upstream")
        # Many requests for the same stale name share one upstream round trip.
        return await self._flights.run(name, lambda: self._refresh(name, entry))

    def known(self, name: str) -> bool:
        """Whether `name` is in memory, being fetched, or known not to exist upstream."""
        return (
            name in self._entries
            or self._flights.running(name)
            or self._missing.get(name, 0.0) > time.monotonic()
        )

    def is_fresh(self, entry: IndexEntry) -> bool:
        """Whether `get` would return this entry without asking anyone."""
        self._imported()
        return time.monotonic() < entry.fresh_until and _still_verified(entry)

    def _imported(self) -> None:
        """Offline, a bundle imported since (mirror.trust.bundle bumps `imports`) may have
        replaced index files, and added crates that the served views hide: every file is
        read from disk again and judged again. Otherwise a running mirror kept serving what
        it served before the import, until it restarted."""
        if self._imports is None:
            return
        seen = self._imports.read()
        if seen == self._imports_seen:
            return
        self._imports_seen = seen
        for entry in self._entries.values():
            entry.fresh_until = 0.0
            entry.views.offline = None
        self._missing.clear()

    async def _refresh(self, name: str, entry: IndexEntry | None) -> IndexEntry:
        disk = None
        shared_error: StoreUnavailable | None = None  # the bucket of a shared store is down
        if entry is None or self._upstream is None:
            # Offline, the disk is the only source, and `import` may have changed it.
            try:
                disk = await self._read_disk(name)
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
            self._gone(name)
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
            self._persist(name, known, known.index.raw)
            self._entries.put(name, known)
            return known

        metrics.cache_counter("index", "miss").inc()
        return await self._accept(name, fetch, known.first_seen if known is not None else None)

    # -- a copy a download contradicts ----------------------------------------------------------

    async def recheck(self, name: str, suspect: IndexEntry, reason: str) -> IndexEntry:
        """Fetch `name`'s index file again because a download contradicts `suspect`, our copy:
        cargo asked for a version it does not list, or a crate did not match its checksum.

        An index file that arrived with a flipped byte may still parse (a wrong version, a
        wrong cksum); fresh, it would be trusted until `index_ttl` runs out. So: ask upstream
        once more, without validators (the copy itself is in doubt, and a 304 would confirm
        it), and keep whatever upstream sends now. Concurrent requests that doubt the same
        copy share one fetch; one that comes after the copy was replaced gets the new one.
        If upstream fails, the copy is kept but no longer fresh: the next request asks again.
        """
        if self._upstream is None:
            return suspect  # offline: the copy is all there is
        current = self._entries.get(name)
        if current is not None and current is not suspect:
            return current
        return await self._rechecks.run(name, lambda: self._refetch(name, suspect, reason))

    async def _refetch(self, name: str, suspect: IndexEntry, reason: str) -> IndexEntry:
        assert self._upstream is not None
        try:
            fetch = await self._upstream.fetch_index(name)
        except UpstreamError as e:
            log.warning("index.recheck_failed", crate=name, reason=reason, error=str(e))
            suspect.fresh_until = 0.0
            return suspect
        if fetch.status == 404:
            self._gone(name)
        changed = fetch.body != suspect.index.raw
        log.warning("index.rechecked", crate=name, reason=reason, changed=changed)
        if not changed:
            suspect.fresh_until = time.monotonic() + self._ttl  # upstream confirms our copy
            return suspect
        metrics.cache_counter("index", "miss").inc()
        return await self._accept(name, fetch, suspect.first_seen)

    # -- shared steps ---------------------------------------------------------------------------

    async def _accept(self, name: str, fetch: IndexFetch, first_seen: float | None) -> IndexEntry:
        """A new body from upstream: verified (TUF), kept in memory and on disk. `first_seen`:
        when this mirror first fetched the crate's index (None: now)."""
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
            first_seen=first_seen or time.time(),
        )
        self._persist(name, fresh, fetch.body)
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

    def _gone(self, name: str) -> NoReturn:
        """Upstream answered 404: remember it for `negative_ttl`, forget any copy."""
        if len(self._missing) >= MAX_REMEMBERED_404S:
            self._missing.clear()  # random names must not grow memory without bound
        self._missing[name] = time.monotonic() + self._negative_ttl
        self._entries.pop(name)
        raise NotFound(f"crate `{name}` does not exist upstream")

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

    # -- the disk copy, written after the answer ------------------------------------------------

    def _persist(self, name: str, entry: IndexEntry, body: bytes) -> None:
        """Store the entry on disk later, not before the answer (write_behind.py). The disk
        copy is only for other workers and restarts; of two copies waiting, only the newer
        one is written."""
        record = CachedIndex(
            body=body,
            etag=entry.etag,
            last_modified=entry.last_modified,
            fetched_at=time.time(),
            verified_until=entry.verified_until,
            first_seen=entry.first_seen,
        )
        self._unsaved[name] = record

        def write() -> None:
            try:
                self._store.write_index(name, record)
            except StorageError as e:
                # Serving from memory still works; the next process start just refetches.
                log.error("index.persist_failed", crate=name, error=str(e))

        def settle() -> None:
            if self._unsaved.get(name) is record:
                del self._unsaved[name]

        self._writes.put(("index", name), write, settle, len(body))

    async def _read_disk(self, name: str) -> CachedIndex | None:
        """The disk copy, or the one about to be written there."""
        unsaved = self._unsaved.get(name)
        if unsaved is not None:
            return unsaved
        if not self._store.has_index(name):
            return None  # a cold name: no thread hop for a file that is not there
        return await asyncio.to_thread(self._store.read_index, name)

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

    def __contains__(self, name: str) -> bool:
        return name in self._entries  # without counting as a use

    def values(self) -> Iterator[IndexEntry]:
        return iter(list(self._entries.values()))

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
