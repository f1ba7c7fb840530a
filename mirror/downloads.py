"""Getting a `.crate` into the store: verified against its index line, fetched at most once."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import structlog

from mirror import metrics
from mirror.errors import IntegrityError, NotFound, TruncatedBody, UpstreamUnavailable
from mirror.index import IndexLine
from mirror.serving.singleflight import SingleFlight
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
        self._bodies[cksum] = body
        self._size += len(body)
        while self._size > self._budget:
            _, evicted = self._bodies.popitem(last=False)
            self._size -= len(evicted)
        return body


class CrateFetcher:
    def __init__(self, store: Store, upstream: Upstream | None, *, max_bytes: int) -> None:
        self.store = store
        self._upstream = upstream  # None: offline
        self._max_bytes = max_bytes
        self._flights: SingleFlight[Path] = SingleFlight()

    def cached_path(self, line: IndexLine) -> Path | None:
        path = self.store.crate_path(line.cksum)
        return path if path.is_file() else None

    async def ensure(self, line: IndexLine) -> Path:
        """Path of the verified crate for `line`, downloading it if needed."""
        path = self.cached_path(line)
        if path is not None:
            metrics.cache_counter("crate", "hit").inc()
            return path
        if self._upstream is None:
            raise NotFound(
                f"{line.name} {line.vers} is not in this offline mirror; add it on a connected "
                "mirror with `crate-mirror prefetch` and carry it over with `crate-mirror export`"
                " / `crate-mirror import`"
            )
        return await self._flights.run(line.cksum, lambda: self._download(line))

    async def _download(self, line: IndexLine) -> Path:
        assert self._upstream is not None
        metrics.cache_counter("crate", "miss").inc()
        attempts = 2  # one retry for a body cut short; a checksum mismatch is never retried
        for attempt in range(attempts):
            try:
                async with self._upstream.download(line.name, line.vers, line.cksum) as chunks:
                    return await self.store.write_crate(line.cksum, chunks, self._max_bytes)
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
