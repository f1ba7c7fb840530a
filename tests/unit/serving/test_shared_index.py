"""The index cache with a shared store: a copy another replica stored is verified by TUF
again before it is served; a bucket that is down means upstream, and both reasons when
upstream fails too."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from mirror.errors import StoreUnavailable, TrustError, UpstreamUnavailable
from mirror.serving.index_cache import IndexCache
from mirror.store import CachedIndex, FilesystemStore
from mirror.upstream.client import IndexFetch

LINE = (
    b'{"name":"serde","vers":"1.0.0","deps":[],"cksum":"' + b"a" * 64 + b'",'
    b'"features":{},"yanked":false}\n'
)
UPSTREAM_LINE = LINE.replace(b"1.0.0", b"1.0.1")


class SharedStore(FilesystemStore):
    """A store whose bucket holds `shared` (or is down: `down`)."""

    def __init__(self, root: Path, shared: CachedIndex | None, down: bool = False) -> None:
        super().__init__(root)
        self.shared, self.down = shared, down

    def has_index(self, name: str) -> bool:
        return True  # as S3Store says of a name the bucket was not asked about yet

    def read_index(self, name: str) -> CachedIndex | None:
        if self.down:
            raise StoreUnavailable("object store: GET index/se/rd/serde failed: timed out")
        return self.shared


class Upstream:
    def __init__(self, fail: bool = False) -> None:
        self.fail, self.calls = fail, 0

    async def fetch_index(
        self, name: str, etag: str | None = None, last_modified: str | None = None
    ) -> IndexFetch:
        self.calls += 1
        if self.fail:
            raise UpstreamUnavailable("upstream connection failed: refused")
        return IndexFetch(200, UPSTREAM_LINE, '"up"', None)


def _cache(store: FilesystemStore, upstream: Upstream, verdict: str | None) -> IndexCache:
    async def verify(name: str, body: bytes) -> float | None:
        if verdict == "reject" and body == LINE:  # the peer's copy; upstream's is signed
            raise TrustError(f"{name}: not in the signed targets")
        return time.time() + 3600

    return IndexCache(
        store,
        upstream,  # type: ignore[arg-type]  # only fetch_index is asked for
        ttl=60,
        negative_ttl=30,
        verifier=verify if verdict is not None else None,
    )


def _shared() -> CachedIndex:
    return CachedIndex(LINE, '"peer"', None, time.time(), time.time() + 10, shared=True)


async def test_a_peer_copy_verified_here_is_served_without_upstream(tmp_path: Path) -> None:
    upstream = Upstream()
    entry = await _cache(SharedStore(tmp_path, _shared()), upstream, "accept").get("serde")
    assert entry.index.raw == LINE and upstream.calls == 0
    assert entry.verified_until is not None and entry.verified_until > time.time() + 3000


async def test_a_peer_copy_failing_tuf_is_not_served(tmp_path: Path) -> None:
    """The record check proves the bytes are what a replica stored, not that TUF signed them:
    a bucket writer must not get an index file past TUF (fail closed: go upstream)."""
    upstream = Upstream()
    entry = await _cache(SharedStore(tmp_path, _shared()), upstream, "reject").get("serde")
    assert entry.index.raw == UPSTREAM_LINE and upstream.calls == 1


async def test_a_bucket_that_is_down_means_upstream(tmp_path: Path) -> None:
    upstream = Upstream()
    entry = await _cache(SharedStore(tmp_path, None, down=True), upstream, None).get("serde")
    assert entry.index.raw == UPSTREAM_LINE


async def test_bucket_and_upstream_down_names_both(tmp_path: Path) -> None:
    cache = _cache(SharedStore(tmp_path, None, down=True), Upstream(fail=True), None)
    with pytest.raises(StoreUnavailable, match=r"shared store failed .*timed out.* upstream"):
        await cache.get("serde")
