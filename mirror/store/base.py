"""What the serving core needs from the cache, as one interface every backend implements.

The core never knows which backend it has (the filesystem today, an object store later): it
calls these methods and nothing else, and the backend owns every write under the cache.
Crates and scan reports are named by the sha256 of the crate, so they are immutable and any
number of processes may write the same one (identical bytes; the last write wins harmlessly).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

STALE_TMP_SECONDS = 3600  # temp files older than this belong to a dead process


@dataclass(frozen=True)
class CachedIndex:
    body: bytes
    etag: str | None  # upstream's validators, for conditional revalidation
    last_modified: str | None
    fetched_at: float  # unix time of the last successful fetch or 304
    # unix time until which the TUF metadata that verified this body is valid (None: no TUF)
    verified_until: float | None = None
    # unix time this mirror first fetched the crate's index file (evidence: "new here")
    first_seen: float | None = None
    # read from a store shared with other replicas (checked against its record, but TUF, when
    # configured, must verify it again before it is served: the record is not a TUF signature)
    shared: bool = False

    def meta(self) -> dict[str, Any]:
        """What is stored beside the body: a header line on disk, a sealed record in a bucket."""
        return {
            "etag": self.etag,
            "last_modified": self.last_modified,
            "fetched": self.fetched_at,
            "verified_until": self.verified_until,
            "first_seen": self.first_seen,
        }

    @classmethod
    def from_meta(
        cls, body: bytes, meta: Mapping[str, Any], *, shared: bool = False
    ) -> CachedIndex:
        """The inverse of `meta`; KeyError, TypeError or ValueError for metadata that is not
        (a field of the wrong type is dropped, never passed on as a validator)."""
        return cls(
            body,
            _text(meta.get("etag")),
            _text(meta.get("last_modified")),
            float(meta["fetched"]),
            _number(meta.get("verified_until")),
            _number(meta.get("first_seen")),
            shared,
        )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


class Store(Protocol):
    # -- lifetime -----------------------------------------------------------------------------

    async def open(self) -> None:
        """Get ready on the running loop (connections, shared state); never fails for an
        unreachable shared store: the local cache still serves."""
        ...

    async def close(self) -> None:
        """Finish what is pending (uploads to a shared store) and release connections."""
        ...

    # -- crates, by sha256 --------------------------------------------------------------------

    def has_crate(self, cksum: str) -> bool:
        """Whether a complete, verified crate with this sha256 is stored."""
        ...

    def crate_path(self, cksum: str) -> Path:
        """The local file of a stored crate (what sendfile sends); raises IntegrityError for a
        malformed digest. Only meaningful once `has_crate` is true."""
        ...

    async def load_crate(self, cksum: str, max_bytes: int) -> Path | None:
        """A crate not stored locally, brought in from a shared store and verified against
        `cksum` on the way (IntegrityError for a damaged copy, StoreUnavailable when the shared
        store cannot be reached); None when no shared copy exists (or nothing is shared)."""
        ...

    async def receive_crate(
        self, cksum: str, chunks: AsyncIterator[bytes], max_bytes: int
    ) -> bytes | Path:
        """Stream a download in, verified: IntegrityError unless its sha256 is `cksum`, and for
        more than `max_bytes`. A small crate comes back as its bytes, not yet stored (commit
        it with `put_crate_bytes`; StorageError now if there is no room for it); a large one
        is committed while it streams (and shared, with a shared store) and
        `crate_path(cksum)` comes back."""
        ...

    def put_crate_bytes(self, cksum: str, data: bytes) -> Path:
        """Commit bytes already in memory; IntegrityError unless sha256 is `cksum`."""
        ...

    def iter_crates(self) -> Iterator[str]:
        """The sha256 of every stored crate."""
        ...

    # -- index files, with upstream's validators ----------------------------------------------

    def has_index(self, name: str) -> bool:
        """Whether an index file for `name` is stored (cheap: no read)."""
        ...

    def read_index(self, name: str) -> CachedIndex | None:
        """The stored index file, or None if absent or unreadable (then it is fetched again).
        Called in a worker thread; a shared store that cannot be reached raises
        StoreUnavailable (the caller goes upstream, and names both if that fails too)."""
        ...

    def write_index(self, name: str, entry: CachedIndex) -> None: ...

    def iter_index_names(self) -> Iterator[str]: ...

    # -- upstream's config.json (for an offline start) ----------------------------------------

    def read_upstream_config(self) -> bytes | None: ...

    def write_upstream_config(self, body: bytes) -> None: ...

    # -- scan reports, as bytes, by the crate's sha256 ----------------------------------------

    def read_scan(self, sha256: str) -> bytes | None:
        """The stored report, or None if absent or unreadable (the crate is scanned again)."""
        ...

    def write_scan(self, sha256: str, body: bytes) -> None: ...

    async def load_scan(self, sha256: str) -> bytes | None:
        """A report not stored locally, brought in from a shared store (record checked) and
        kept locally; None when there is none (then the crate is scanned here)."""
        ...

    def iter_scans(self) -> Iterator[str]:
        """The sha256 of every crate with a stored scan report."""
        ...

    # -- maintenance --------------------------------------------------------------------------

    def check_writable(self) -> None:
        """Write, sync and remove a small probe; StorageError when the cache cannot take a
        write (disk full, read-only, permissions). For readiness (`/readyz`)."""
        ...

    def remove_stale_tmp(self, older_than: float = STALE_TMP_SECONDS) -> int:
        """Delete temporary files left by crashed processes; returns how many."""
        ...
