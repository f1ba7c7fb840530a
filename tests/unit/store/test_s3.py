"""`S3Store`: what one replica writes, another reads through the bucket, checked on the way;
damaged, forged or unreachable copies are never served."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mirror.errors import BadRequest, IntegrityError, StoreUnavailable
from mirror.store import CachedIndex, FilesystemStore
from mirror.store import s3 as s3_store
from mirror.store.s3 import CONFIG_KEY, S3Store, crate_key, index_key, scan_key
from mirror.upstream.s3 import MIN_PART_BYTES, S3Client, S3Limits, S3Location
from mirror.upstream.sigv4 import Credentials
from tests.fixtures.object_store import ACCESS_KEY, SECRET_KEY, StoreProxy, TestBucket

LIMIT = 64 * 2**20
CRATE = os.urandom(5000)
CKSUM = hashlib.sha256(CRATE).hexdigest()


def _store(
    root: Path, bucket: TestBucket, endpoint: str | None = None, key: bytes | None = None
) -> S3Store:
    location = S3Location.of(bucket.name, endpoint or bucket.endpoint, "us-east-1", "", "path")
    limits = S3Limits(retries=1, connect_timeout=2.0, read_timeout=3.0, part_bytes=MIN_PART_BYTES)
    client = S3Client(location, Credentials(ACCESS_KEY, SECRET_KEY), limits)
    return S3Store(FilesystemStore(root), client, max_index_bytes=2**20, record_key=key)


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    for i in range(0, len(data), 1000):
        yield data[i : i + 1000]


async def _write(store: S3Store, cksum: str, data: bytes) -> None:
    """A download, as the crate fetcher stores it: received (verified), then committed."""
    received = await store.receive_crate(cksum, _chunks(data), LIMIT)
    if isinstance(received, bytes):
        await asyncio.to_thread(store.put_crate_bytes, cksum, received)


async def _opened(*stores: S3Store) -> None:
    for store in stores:
        await store.open()


async def test_a_crate_written_by_one_replica_is_read_by_another(
    s3_bucket: TestBucket, tmp_path: Path
) -> None:
    """Write-through after local verification, read-through verified; the scan report too."""
    a, b = _store(tmp_path / "a", s3_bucket), _store(tmp_path / "b", s3_bucket)
    await _opened(a, b)
    try:
        await _write(a, CKSUM, CRATE)
        await asyncio.to_thread(a.write_scan, CKSUM, b'{"report": 1}')
        await a.flush()
        assert s3_bucket.read(crate_key(CKSUM)) == CRATE
        assert not b.has_crate(CKSUM)
        path = await b.load_crate(CKSUM, LIMIT)
        assert path is not None and path.read_bytes() == CRATE and b.has_crate(CKSUM)
        assert b.read_scan(CKSUM) is None  # asked for only when a scan is needed
        assert await b.load_scan(CKSUM) == b'{"report": 1}'
        assert b.read_scan(CKSUM) == b'{"report": 1}'  # and kept
        assert await b.load_scan("0" * 64) is None
        assert await b.load_crate("0" * 64, LIMIT) is None  # nowhere
    finally:
        await a.close()
        await b.close()


@pytest.mark.parametrize("how", ["garbage in the bucket", "a byte flipped in transit"])
async def test_a_damaged_crate_is_never_kept_or_served(
    how: str, s3_bucket: TestBucket, store_proxy: StoreProxy, tmp_path: Path
) -> None:
    s3_bucket.write(crate_key(CKSUM), CRATE)
    if how == "garbage in the bucket":
        s3_bucket.write(crate_key(CKSUM), CRATE[:-1] + b"X")
    else:
        store_proxy.faults.add("flip", match="GET /")
    b = _store(tmp_path / "b", s3_bucket, store_proxy.url)
    await b.open()
    try:
        with pytest.raises(IntegrityError, match="object store's copy"):
            await b.load_crate(CKSUM, LIMIT)
        assert not b.has_crate(CKSUM)
        assert list(b.local.tmp_dir.iterdir()) == []
    finally:
        await b.close()


async def test_a_large_crate_is_uploaded_in_parts(s3_bucket: TestBucket, tmp_path: Path) -> None:
    data = os.urandom(MIN_PART_BYTES + 4096)
    cksum = hashlib.sha256(data).hexdigest()
    a = _store(tmp_path / "a", s3_bucket)
    await a.open()
    try:
        await _write(a, cksum, data)
        await a.flush()
    finally:
        await a.close()
    assert s3_bucket.read(crate_key(cksum)) == data
    assert s3_bucket.unfinished_uploads() == []


@pytest.mark.parametrize("key", [None, b"shared-record-key"])
async def test_index_files_travel_with_their_validators(
    key: bytes | None, s3_bucket: TestBucket, tmp_path: Path
) -> None:
    a, b = _store(tmp_path / "a", s3_bucket, key=key), _store(tmp_path / "b", s3_bucket, key=key)
    await _opened(a, b)
    entry = CachedIndex(
        b'{"name":"serde"}\n', '"etag-1"', "Mon, 01 Jan 2024", 1234.5, 99999.0, first_seen=1000.0
    )
    try:
        await asyncio.to_thread(a.write_index, "serde", entry)
        await a.flush()
        got = await asyncio.to_thread(b.read_index, "serde")
        assert got is not None and got.shared
        assert (got.body, got.etag, got.last_modified, got.fetched_at, got.verified_until) == (
            entry.body,
            entry.etag,
            entry.last_modified,
            entry.fetched_at,
            entry.verified_until,
        )
        # When the mirror first saw the crate is evidence (risk: "new here"): a replica reading
        # the index file through the bucket must not take the crate for one it just met.
        assert got.first_seen == entry.first_seen
        assert b.local.read_index("serde") is None  # kept locally only once the cache verified it
        assert await asyncio.to_thread(b.read_index, "serde_json") is None
    finally:
        await a.close()
        await b.close()


async def test_forged_and_swapped_index_records_are_refused(
    s3_bucket: TestBucket, tmp_path: Path
) -> None:
    """With a record key, an index file written by someone without it is not used, nor is
    a genuine record moved to another crate's key."""
    key = b"shared-record-key"
    a = _store(tmp_path / "a", s3_bucket, key=key)
    mallory = _store(tmp_path / "m", s3_bucket, key=b"not-the-key")
    b = _store(tmp_path / "b", s3_bucket, key=key)
    await _opened(a, mallory, b)
    try:
        await asyncio.to_thread(a.write_index, "serde", CachedIndex(b"good\n", None, None, 1.0))
        await asyncio.to_thread(
            mallory.write_index, "rand", CachedIndex(b"evil\n", None, None, 1.0)
        )
        await a.flush()
        await mallory.flush()
        s3_bucket.write(index_key("itoa"), s3_bucket.read(index_key("serde")))
        assert await asyncio.to_thread(b.read_index, "rand") is None
        assert await asyncio.to_thread(b.read_index, "itoa") is None
        assert (await asyncio.to_thread(b.read_index, "serde")) is not None
    finally:
        for store in (a, mallory, b):
            await store.close()


async def test_an_unreachable_bucket_leaves_the_local_cache_serving(
    s3_bucket: TestBucket, store_proxy: StoreProxy, tmp_path: Path
) -> None:
    """Start, reads and writes with the bucket down: local answers stand, reads of what is
    not local say the store is unavailable, uploads fail quietly (logged)."""
    store_proxy.faults.add("reset")
    b = _store(tmp_path / "b", s3_bucket, store_proxy.url)
    await b.open()  # does not fail
    try:
        await _write(b, CKSUM, CRATE)  # local commit; the upload fails
        await b.flush()
        assert b.crate_path(CKSUM).read_bytes() == CRATE
        with pytest.raises(StoreUnavailable, match="after 2 attempts"):
            await b.load_crate("1" * 64, LIMIT)
        with pytest.raises(StoreUnavailable, match="GET index/se/rd/serde"):
            await asyncio.to_thread(b.read_index, "serde")
    finally:
        await b.close()
    assert s3_bucket.objects() == []


async def test_an_offline_start_learns_upstream_config_from_the_bucket(
    s3_bucket: TestBucket, tmp_path: Path
) -> None:
    a = _store(tmp_path / "a", s3_bucket)
    await a.open()
    await asyncio.to_thread(a.write_upstream_config, b'{"dl": "https://x/"}')
    await a.close()
    assert CONFIG_KEY in s3_bucket.objects()
    b = _store(tmp_path / "b", s3_bucket)
    await b.open()
    await b.close()
    assert b.read_upstream_config() == b'{"dl": "https://x/"}'


async def test_scan_reports_are_shared_by_sha256(s3_bucket: TestBucket, tmp_path: Path) -> None:
    a = _store(tmp_path / "a", s3_bucket)
    await a.open()
    await asyncio.to_thread(a.write_scan, CKSUM, b"{}")
    await a.close()
    assert scan_key(CKSUM) in s3_bucket.objects()
    with pytest.raises(IntegrityError):
        crate_key("../../etc/passwd")  # only a hex digest becomes a key
    with pytest.raises(BadRequest):
        index_key("../config/upstream-config.json")  # nor can a name reach another key


async def test_crates_of_a_name_the_bucket_lacked_are_not_looked_up(
    s3_bucket: TestBucket, store_proxy: StoreProxy, tmp_path: Path
) -> None:
    """A cold fetch: the bucket had no index file for the name, so no replica fetched its
    crates; they are fetched upstream without a bucket round trip each. Names the bucket knows
    are looked up as usual."""
    b = _store(tmp_path / "b", s3_bucket, store_proxy.url)
    await b.open()
    line = b'{"name":"serde","vers":"1.0.0","deps":[],"cksum":"%s","features":{}}\n'
    try:
        assert await asyncio.to_thread(b.read_index, "serde") is None  # 404 in the bucket
        body = line % CKSUM.encode()
        await asyncio.to_thread(b.write_index, "serde", CachedIndex(body, None, None, 1.0))
        store_proxy.requests.clear()
        assert await b.load_crate(CKSUM, LIMIT) is None
        assert store_proxy.requests.count("/crates/") == 0
        other = hashlib.sha256(b"other").hexdigest()
        assert await b.load_crate(other, LIMIT) is None
        assert store_proxy.requests.count("/crates/") == 1
    finally:
        await b.close()


class RecordingBucket:
    """An in-memory bucket that notes when each upload arrived."""

    def __init__(self) -> None:
        self.puts: dict[str, float] = {}

    def describe(self) -> str:
        return "memory"

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def check(self) -> None: ...

    async def get(self, key: str, max_bytes: int) -> tuple[bytes, str] | None:
        return None

    async def put_file(self, key: str, path: Path, sha256: str) -> None:
        self.puts[key] = time.monotonic()

    async def abort_stale_uploads(self, older_than: float) -> int:
        return 0


async def test_uploads_wait_for_a_pause_and_go_at_once_on_close(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Write-behind: while crates keep arriving, their uploads wait (serving first); a pause
    lets them go; at shutdown, pending uploads go without waiting."""
    monkeypatch.setattr(s3_store, "UPLOAD_QUIET", 1.0)
    bucket = RecordingBucket()
    store = S3Store(FilesystemStore(tmp_path), bucket, max_index_bytes=2**20)  # type: ignore[arg-type]
    await store.open()
    crates = [os.urandom(100 + i) for i in range(6)]
    started = time.monotonic()
    for data in crates[:5]:  # a burst: one crate every 0.05 s
        await _write(store, hashlib.sha256(data).hexdigest(), data)
        await asyncio.sleep(0.05)
    burst = time.monotonic() - started
    assert bucket.puts == {}  # still busy: nothing went up during the burst
    await store.flush()
    assert len(bucket.puts) == 5
    assert min(bucket.puts.values()) - started >= burst + 0.5  # after a pause
    last = crates[5]
    await _write(store, hashlib.sha256(last).hexdigest(), last)
    closing = time.monotonic()
    await store.close()
    assert bucket.puts[crate_key(hashlib.sha256(last).hexdigest())] - closing < 0.5


async def test_an_unchanged_index_file_is_not_uploaded_on_every_revalidation(
    s3_bucket: TestBucket, store_proxy: StoreProxy, tmp_path: Path
) -> None:
    """A 304 from upstream rewrites the local copy; the bucket gets it again only when the
    body changed (or after INDEX_REUPLOAD_SECONDS), not one PUT per name per index_ttl."""
    a = _store(tmp_path / "a", s3_bucket, store_proxy.url)
    await a.open()
    try:
        for fetched, body in ((1.0, b"v1\n"), (2.0, b"v1\n"), (3.0, b"v2\n"), (4.0, b"v2\n")):
            await asyncio.to_thread(a.write_index, "serde", CachedIndex(body, None, None, fetched))
            await a.flush()
        puts = [r for r in store_proxy.requests.all() if r.method == "PUT"]
        assert len(puts) == 2  # v1 once, v2 once
        b = _store(tmp_path / "b", s3_bucket)
        await b.open()
        got = await asyncio.to_thread(b.read_index, "serde")
        await b.close()
        assert got is not None and got.body == b"v2\n" and got.fetched_at == 3.0
    finally:
        await a.close()


async def test_two_replicas_uploading_the_same_crate_is_harmless(
    s3_bucket: TestBucket, tmp_path: Path
) -> None:
    """Both fetched it at once: two multipart uploads of one key, identical bytes, one
    complete object, nothing left unfinished."""
    data = os.urandom(MIN_PART_BYTES + 777)
    cksum = hashlib.sha256(data).hexdigest()
    a, b = _store(tmp_path / "a", s3_bucket), _store(tmp_path / "b", s3_bucket)
    await _opened(a, b)
    try:
        await asyncio.gather(_write(a, cksum, data), _write(b, cksum, data))
        await asyncio.gather(a.close(), b.close())
    finally:
        await a.close()
        await b.close()
    assert s3_bucket.read(crate_key(cksum)) == data
    assert s3_bucket.unfinished_uploads() == []
