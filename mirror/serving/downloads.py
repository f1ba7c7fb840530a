"""Getting a `.crate`: from memory, the store (its local directory, then a bucket shared with
other replicas) or upstream, verified against its index line, fetched at most once however
many requests ask for it at the same time.

A small crate fresh from upstream is answered from memory as soon as it is verified, and
committed to the store later (write_behind.py): the fsync'd write is not on the path of the
request that fetched it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from mirror import metrics
from mirror.errors import (
    IntegrityError,
    NotFound,
    StorageError,
    StoreUnavailable,
    TruncatedBody,
    UpstreamUnavailable,
)
from mirror.index import IndexLine
from mirror.serving.singleflight import SingleFlight
from mirror.serving.write_behind import WriteBehind
from mirror.store import Store
from mirror.upstream.client import Upstream

log = structlog.get_logger("mirror.downloads")


class HotCrates:
    """Small crates kept in memory, most recently used first, within a byte budget.

    Most crates are a few KiB; answering them from memory skips the open/stat/sendfile
    round trips through the thread pool that make file responses ~4x slower than a body we
    already hold. Crates are immutable (named by their hash), so nothing is ever stale.
    """

    def __init__(self, budget: int, max_file: int) -> None:
        self._budget = budget  # bytes for all bodies together
        self._max_file = max_file  # bytes; larger crates are always sent with sendfile
        self._bodies: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0

    def get(self, cksum: str) -> bytes | None:
        body = self._bodies.get(cksum)
        if body is not None:
            self._bodies.move_to_end(cksum)
        return body

    def load(self, cksum: str, path: Path) -> bytes | None:
        """Read and keep a small crate; None for one too large to hold."""
        if self._budget <= 0:
            return None
        try:
            if path.stat().st_size > self._max_file:
                return None
            body = path.read_bytes()
        except OSError:
            return None
        self.keep(cksum, body)
        return body

    def keep(self, cksum: str, body: bytes) -> None:
        """Hold a crate already in memory, if it is small enough."""
        if self._budget <= 0 or len(body) > self._max_file or cksum in self._bodies:
            return
        self._bodies[cksum] = body
        self._size += len(body)
        while self._size > self._budget:
            _, evicted = self._bodies.popitem(last=False)
            self._size -= len(evicted)


@dataclass(frozen=True, slots=True)
class CrateFile:
    """A verified crate: always a local file (sendfile), and its bytes when small enough."""

    path: Path
    body: bytes | None
    was_cached: bool  # in memory or the store before this request

    def read(self) -> bytes:
        return self.body if self.body is not None else self.path.read_bytes()


class CrateFetcher:
    def __init__(
        self,
        store: Store,
        upstream: Upstream | None,
        hot: HotCrates,
        learn_dl: Callable[[], Awaitable[None]],
        *,
        max_bytes: int,
        writes: WriteBehind | None = None,
    ) -> None:
        self.store = store
        self._upstream = upstream  # None: offline
        self._hot = hot
        self._learn_dl = learn_dl  # upstream's `dl` template, if config.json failed at start
        self._max_bytes = max_bytes
        self._flights: SingleFlight[CrateFile] = SingleFlight()
        self._uncommitted: dict[str, bytes] = {}  # verified, answered, not yet in the store
        self._writes = writes if writes is not None else WriteBehind()

    async def get(self, line: IndexLine) -> CrateFile:
        """The verified crate for `line`: memory, else the store, else upstream (checksum)."""
        body = self._hot.get(line.cksum)
        if body is None:
            body = self._uncommitted.get(line.cksum)
        if body is not None:
            metrics.cache_counter("crate", "hit").inc()
            return CrateFile(self.store.crate_path(line.cksum), body, True)
        if self.store.has_crate(line.cksum):
            metrics.cache_counter("crate", "hit").inc()
            path = self.store.crate_path(line.cksum)
            return CrateFile(path, self._hot.load(line.cksum, path), True)
        return await self._flights.run(line.cksum, lambda: self._fetch(line))

    async def _fetch(self, line: IndexLine) -> CrateFile:
        """A crate not stored here: from the shared store if it has a good copy, else upstream.
        A damaged shared copy is never served (the upstream copy replaces it); with the shared
        store down and no upstream either, the answer says both."""
        shared_error: IntegrityError | StoreUnavailable | None = None
        try:
            path = await self.store.load_crate(line.cksum, self._max_bytes)
            if path is not None:
                return CrateFile(path, self._hot.load(line.cksum, path), False)
        except (IntegrityError, StoreUnavailable) as e:
            shared_error = e
            log.warning(
                "crate.shared_store_failed", crate=line.name, version=line.vers, error=str(e)
            )
        if self._upstream is None:
            if shared_error is not None:
                raise StoreUnavailable(f"{line.name} {line.vers}: {shared_error}")
            raise NotFound(
                f"{line.name} {line.vers} is not in this offline mirror; add it on a connected "
                "mirror with `crate-mirror prefetch` and carry it over with `crate-mirror export`"
                " / `crate-mirror import`"
            )
        try:
            return await self._download(line)
        except UpstreamUnavailable as e:
            if shared_error is None:
                raise
            raise StoreUnavailable(
                f"{line.name} {line.vers}: the shared store failed ({shared_error}) and so did "
                f"upstream ({e})"
            ) from e

    async def _download(self, line: IndexLine) -> CrateFile:
        assert self._upstream is not None
        if not self._upstream.has_config:
            await self._learn_dl()  # upstream was down at start: learn its `dl` now
        metrics.cache_counter("crate", "miss").inc()
        attempts = 2  # one retry for a body cut short; a checksum mismatch is never retried
        for attempt in range(attempts):
            try:
                async with self._upstream.download(line.name, line.vers, line.cksum) as chunks:
                    received = await self.store.receive_crate(line.cksum, chunks, self._max_bytes)
                return self._answer(line.cksum, received)
            except IntegrityError as e:
                log.error(
                    "crate.rejected",
                    crate=line.name,
                    version=line.vers,
                    error=str(e),
                    attempt=attempt + 1,
                )
                if not isinstance(e, TruncatedBody) or attempt + 1 == attempts:
                    raise
            except UpstreamUnavailable as e:
                log.error("crate.upstream_failed", crate=line.name, version=line.vers, error=str(e))
                raise
        raise AssertionError("unreachable")

    def _answer(self, cksum: str, received: bytes | Path) -> CrateFile:
        if isinstance(received, Path):  # large: already committed while it streamed
            return CrateFile(received, self._hot.load(cksum, received), False)
        self._hot.keep(cksum, received)
        self._uncommitted[cksum] = received
        self._writes.put(
            ("crate", cksum),
            lambda: self._commit(cksum, received),
            lambda: self._settle(cksum),
            len(received),
        )
        return CrateFile(self.store.crate_path(cksum), received, False)

    def _settle(self, cksum: str) -> None:
        """Committed (or failed to be: then the next request fetches it again)."""
        self._uncommitted.pop(cksum, None)

    def _commit(self, cksum: str, body: bytes) -> None:
        try:
            self.store.put_crate_bytes(cksum, body)
        except StorageError as e:
            # The client has its verified crate; the cache does not, and the next request
            # fetches it again. Disk trouble is what /readyz reports.
            log.error("crate.commit_failed", cksum=cksum, error=str(e))
