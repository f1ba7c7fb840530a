"""`S3Store`: a local directory (the hot set) in front of a bucket that replicas share.

Reads go to the local `FilesystemStore` first (sendfile, no network); on a miss they read
through to the bucket, and what comes back is checked before it is kept or served:

    crate         streamed into the local store, committed only if its sha256 is its key
    index file    a sealed record (mirror.store.records): kind, name, sha256, validators,
                  and an HMAC when the replicas share a record key; with TUF configured, the
                  index cache verifies the body again (CachedIndex.shared)
    scan report   a sealed record, pulled when a scan is needed (before scanning here)
    config.json   a sealed record, pulled at start when the local copy is missing

Writes go to the local store, and only then, verified, up to the bucket in the background (a
crate is shared once it is committed locally: cargo does not wait for the upload, and
uploads wait for a quarter-second pause in the store's traffic, five seconds at most, so
replication does not slow the fetch that caused it). Large crates go up as multipart
uploads, so a replica killed mid-upload leaves no object, only an unfinished upload that
`open` aborts once it is older than an hour. Two replicas uploading the same crate write
identical bytes under the same key: harmless.

The bucket is reached through `Bucket` (mirror.upstream.s3.S3Client: the one way out). When it
cannot be reached, reads fall back to what is local and raise StoreUnavailable (503 with the
reason) only when nothing else can answer; a failed upload is logged and the crate stays local.

Index files are read by the index cache in worker threads (`asyncio.to_thread`), so
`read_index` is synchronous and hands its bucket read to the event loop the bucket client
lives on. Scan reports are pulled by `load_scan` when a scan is needed, config.json by `open`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from contextlib import AbstractAsyncContextManager, suppress
from pathlib import Path
from typing import Any, Protocol, TypeVar

import structlog

from mirror import metrics
from mirror.errors import IntegrityError, StorageError, StoreUnavailable
from mirror.index import IndexFile, index_path, validate_name
from mirror.store.base import STALE_TMP_SECONDS, CachedIndex
from mirror.store.filesystem import FilesystemStore, fan_out
from mirror.store.records import seal, unseal

log = structlog.get_logger("mirror.store")
T = TypeVar("T")

MAX_SCAN_RECORD_BYTES = 16 * 2**20  # bytes; a scan report is a few KiB
MAX_CONFIG_RECORD_BYTES = 64 * 1024  # bytes
UPLOADS_AT_ONCE = 8  # background uploads in flight per process
CLOSE_TIMEOUT = 60.0  # seconds `close` waits for pending uploads
READ_TIMEOUT = 60.0  # seconds a worker thread waits for an index read from the bucket
MAX_UNSHARED = 100_000  # crates remembered as absent from the bucket (then forgotten at once)
INDEX_REUPLOAD_SECONDS = 600.0  # an unchanged index file goes up again at most this often
UPLOAD_QUIET = 0.25  # seconds without store traffic before an upload starts (serving first)
UPLOAD_MAX_DELAY = 5.0  # seconds an upload waits for such a pause at most


class Bucket(Protocol):
    """What the S3 backend needs of an object store client (mirror.upstream.s3.S3Client)."""

    def describe(self) -> str: ...

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def check(self) -> None: ...

    async def get(self, key: str, max_bytes: int) -> tuple[bytes, str] | None: ...

    async def head(self, key: str) -> str | None: ...

    def stream(
        self, key: str, max_bytes: int
    ) -> AbstractAsyncContextManager[AsyncIterator[bytes] | None]: ...

    async def put(
        self,
        key: str,
        body: bytes,
        *,
        if_match: str | None = None,
        if_none_match: str | None = None,
    ) -> str | None: ...

    async def put_file(self, key: str, path: Path, sha256: str) -> None: ...

    async def abort_stale_uploads(self, older_than: float) -> int: ...


def crate_key(cksum: str) -> str:
    return "crates/" + fan_out(cksum, ".crate")  # fan_out refuses anything but a hex digest


def index_key(name: str) -> str:
    # Key injection: only a legal crate name (no '/', no '..') becomes part of a key.
    return "index/" + index_path(validate_name(name))


def scan_key(sha256: str) -> str:
    return "scans/" + fan_out(sha256, ".json")


CONFIG_KEY = "config/upstream-config.json"


class S3Store:
    def __init__(
        self,
        local: FilesystemStore,
        bucket: Bucket,
        *,
        max_index_bytes: int,
        record_key: bytes | None = None,
        stale_upload_seconds: float = STALE_TMP_SECONDS,
    ) -> None:
        self.local = local
        self.bucket = bucket
        self._max_index_record = max_index_bytes + 64 * 1024  # body + its header
        self._record_key = record_key  # HMAC key shared by the replicas (None: sha256 only)
        self._stale_upload_seconds = stale_upload_seconds
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self._slots: asyncio.Semaphore | None = None
        # Crate names whose index file the bucket lacked when read here, and the checksums
        # of their crates once the upstream copy is written: no replica has fetched them, so
        # asking the bucket for those crates would only cost a round trip on a cold fetch. (If
        # a peer uploads one meanwhile, this replica fetches it upstream: harmless.)
        self._names_not_shared: set[str] = set()
        self._crates_not_shared: set[str] = set()
        # Write-behind: uploads wait for a pause in the store's traffic (at most
        # UPLOAD_MAX_DELAY), so a cold `cargo fetch` does not share the CPU with its own
        # replication; at shutdown they go at once.
        self._busy_until = 0.0  # monotonic time until which the store counts as busy
        self._closing = asyncio.Event()  # set by `close`: waiting uploads go at once
        # name -> (sha256 of the body the bucket has, monotonic time it was put or read): a
        # revalidation that changed nothing is not uploaded again before INDEX_REUPLOAD_SECONDS
        # (each replica would otherwise PUT every hot index file once per index_ttl; peers
        # that find the bucket's copy older than their TTL revalidate it with upstream).
        self._index_in_bucket: dict[str, tuple[str, float]] = {}

    def __repr__(self) -> str:
        return f"S3Store({self.local.root}, {self.bucket.describe()})"

    # -- lifetime -----------------------------------------------------------------------------

    async def open(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._slots = asyncio.Semaphore(UPLOADS_AT_ONCE)
        await self.bucket.open()
        try:
            await self.bucket.check()
            if self.local.read_upstream_config() is None:
                await self._pull_config()  # an offline start learns upstream's `dl` from peers
            aborted = await self.bucket.abort_stale_uploads(self._stale_upload_seconds)
            if aborted:
                log.warning("store.stale_uploads_aborted", count=aborted)
        except (StoreUnavailable, IntegrityError) as e:
            log.error(
                "store.bucket_unavailable_at_start", bucket=self.bucket.describe(), error=str(e)
            )

    async def close(self) -> None:
        self._closing.set()
        await asyncio.sleep(0)  # uploads handed over from worker threads join `_pending`
        if self._pending:
            _, pending = await asyncio.wait(set(self._pending), timeout=CLOSE_TIMEOUT)
            if pending:
                log.error("store.uploads_unfinished", count=len(pending))
                for task in pending:
                    task.cancel()
        await self.bucket.close()

    async def flush(self) -> None:
        """Wait for every upload started so far (tests, benchmarks, shutdown)."""
        await asyncio.sleep(0)
        while self._pending:
            await asyncio.wait(set(self._pending))

    # -- crates -------------------------------------------------------------------------------

    def has_crate(self, cksum: str) -> bool:
        return self.local.has_crate(cksum)

    def crate_path(self, cksum: str) -> Path:
        return self.local.crate_path(cksum)

    async def load_crate(self, cksum: str, max_bytes: int) -> Path | None:
        self._touch()
        key = crate_key(cksum)
        if cksum in self._crates_not_shared:
            metrics.cache_counter("crate", "shared_skipped").inc()
            return None
        async with self.bucket.stream(key, max_bytes) as chunks:
            if chunks is None:
                return None
            try:
                received = await self.local.receive_crate(cksum, chunks, max_bytes)
            except IntegrityError as e:
                # Never kept, never served: the caller goes upstream (whose good copy then
                # replaces this one in the bucket) or answers with this reason.
                metrics.cache_counter("crate", "shared_rejected").inc()
                log.error("store.crate_rejected", key=key, error=str(e))
                raise IntegrityError(f"the object store's copy of {cksum} is damaged: {e}") from e
        if isinstance(received, bytes):
            path = await asyncio.to_thread(self.local.put_crate_bytes, cksum, received)
        else:
            path = received
        metrics.cache_counter("crate", "shared").inc()
        return path

    async def receive_crate(
        self, cksum: str, chunks: AsyncIterator[bytes], max_bytes: int
    ) -> bytes | Path:
        self._touch()
        received = await self.local.receive_crate(cksum, chunks, max_bytes)  # verified
        if isinstance(received, Path):  # committed while it streamed: share it now
            self._upload(
                crate_key(cksum), lambda: self.bucket.put_file(crate_key(cksum), received, cksum)
            )
        return received  # small: shared by put_crate_bytes when the caller commits it

    def put_crate_bytes(self, cksum: str, data: bytes) -> Path:
        path = self.local.put_crate_bytes(cksum, data)
        self._upload(crate_key(cksum), lambda: self.bucket.put_file(crate_key(cksum), path, cksum))
        return path

    def iter_crates(self) -> Iterator[str]:
        return self.local.iter_crates()

    # -- index files --------------------------------------------------------------------------

    def has_index(self, name: str) -> bool:
        # Here or perhaps in the bucket: only a name the bucket lacked skips the look there.
        return self.local.has_index(name) or name not in self._names_not_shared

    def read_index(self, name: str) -> CachedIndex | None:
        found = self.local.read_index(name)
        if found is not None:
            return found
        self._touch()
        return self._on_loop(self._pull_index(name), default=None)

    def write_index(self, name: str, entry: CachedIndex) -> None:
        self.local.write_index(name, entry)
        digest = hashlib.sha256(entry.body).hexdigest()
        known = self._index_in_bucket.get(name)
        now = time.monotonic()
        if known is not None and known[0] == digest and now - known[1] < INDEX_REUPLOAD_SECONDS:
            return
        self._note_index(name, digest, now)
        if name in self._names_not_shared:
            self._names_not_shared.discard(name)
            if len(self._crates_not_shared) > MAX_UNSHARED:
                self._crates_not_shared.clear()
            self._crates_not_shared.update(line.cksum for line in IndexFile.parse(entry.body).lines)
        record = seal("index", name, entry.body, entry.meta(), self._record_key)
        self._upload(index_key(name), lambda: self._put(index_key(name), record))

    def iter_index_names(self) -> Iterator[str]:
        return self.local.iter_index_names()

    def _note_index(self, name: str, digest: str, when: float) -> None:
        if len(self._index_in_bucket) > MAX_UNSHARED:
            self._index_in_bucket.clear()
        self._index_in_bucket[name] = (digest, when)

    async def _pull_index(self, name: str) -> CachedIndex | None:
        key = index_key(name)
        try:
            found = await self.bucket.get(key, self._max_index_record)
            if found is None:
                if len(self._names_not_shared) > MAX_UNSHARED:
                    self._names_not_shared.clear()
                self._names_not_shared.add(name)
                return None
            meta, body = unseal("index", name, found[0], self._record_key)
            self._note_index(name, hashlib.sha256(body).hexdigest(), time.monotonic())
            return CachedIndex.from_meta(body, meta, shared=True)
        except (KeyError, TypeError, ValueError):
            log.error("store.record_rejected", key=key, error="bad metadata")
        except IntegrityError as e:
            log.error("store.record_rejected", key=key, error=str(e))
        except StoreUnavailable as e:
            log.warning("store.read_failed", key=key, error=str(e))
            raise  # the index cache goes upstream, and says both reasons if that fails too
        return None  # damaged or forged: fetched from upstream instead

    # -- upstream's config.json ---------------------------------------------------------------

    def read_upstream_config(self) -> bytes | None:
        return self.local.read_upstream_config()

    def write_upstream_config(self, body: bytes) -> None:
        self.local.write_upstream_config(body)
        record = seal("config", "upstream", body, {}, self._record_key)
        self._upload(CONFIG_KEY, lambda: self._put(CONFIG_KEY, record))

    async def _pull_config(self) -> None:
        found = await self.bucket.get(CONFIG_KEY, MAX_CONFIG_RECORD_BYTES)
        if found is not None:
            _, body = unseal("config", "upstream", found[0], self._record_key)
            await asyncio.to_thread(self.local.write_upstream_config, body)

    # -- scan reports -------------------------------------------------------------------------

    def read_scan(self, sha256: str) -> bytes | None:
        return self.local.read_scan(sha256)

    def write_scan(self, sha256: str, body: bytes) -> None:
        self.local.write_scan(sha256, body)
        record = seal("scan", sha256, body, {}, self._record_key)
        self._upload(scan_key(sha256), lambda: self._put(scan_key(sha256), record))

    def iter_scans(self) -> Iterator[str]:
        return self.local.iter_scans()

    async def load_scan(self, sha256: str) -> bytes | None:
        """A report a peer made (asked only when a scan is needed: with the capability rule
        on); record checked, then kept locally."""
        key = scan_key(sha256)
        try:
            found = await self.bucket.get(key, MAX_SCAN_RECORD_BYTES)
            if found is None:
                return None
            _, body = unseal("scan", sha256, found[0], self._record_key)
        except (IntegrityError, StoreUnavailable) as e:
            log.warning("store.scan_not_pulled", key=key, error=str(e))
            return None  # scanned here instead
        await asyncio.to_thread(self.local.write_scan, sha256, body)
        return body

    # -- maintenance --------------------------------------------------------------------------

    def check_writable(self) -> None:
        self.local.check_writable()  # the bucket's health is upstream health for /readyz

    def remove_stale_tmp(self, older_than: float = STALE_TMP_SECONDS) -> int:
        return self.local.remove_stale_tmp(older_than)

    # -- between threads and the loop the bucket client lives on ------------------------------

    def _on_loop(self, work: Coroutine[Any, Any, T], *, default: T) -> T:
        """Run `work` on the store's loop and wait for it, from a worker thread. On the loop's
        own thread (or before `open`) it cannot wait without stalling every request: then the
        local answer stands."""
        loop = self._loop
        if loop is None or threading.get_ident() == self._loop_thread:
            work.close()
            return default
        future = asyncio.run_coroutine_threadsafe(work, loop)
        try:
            return future.result(READ_TIMEOUT)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise StoreUnavailable(f"object store: no answer in {READ_TIMEOUT:.0f} s") from None

    def _upload(self, key: str, start: Callable[[], Awaitable[object]]) -> None:
        """Start an upload in the background, from the loop's thread or any other."""
        loop = self._loop
        if loop is None:
            log.warning("store.upload_skipped", key=key, reason="store not opened")
            return
        if threading.get_ident() == self._loop_thread:
            self._begin(key, start)
        else:
            loop.call_soon_threadsafe(self._begin, key, start)

    def _begin(self, key: str, start: Callable[[], Awaitable[object]]) -> None:
        task = asyncio.ensure_future(self._run_upload(key, start))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def _touch(self) -> None:
        self._busy_until = time.monotonic() + UPLOAD_QUIET

    async def _run_upload(self, key: str, start: Callable[[], Awaitable[object]]) -> None:
        assert self._slots is not None
        self._touch()
        deadline = time.monotonic() + UPLOAD_MAX_DELAY
        while not self._closing.is_set() and (now := time.monotonic()) < (
            until := min(self._busy_until, deadline)
        ):
            with suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), until - now)
        async with self._slots:
            try:
                await start()
            except (StorageError, IntegrityError, OSError) as e:
                # The local copy still serves; peers fetch this one from upstream themselves.
                metrics.cache_counter("upload", "failed").inc()
                log.error("store.upload_failed", key=key, error=str(e))
            else:
                metrics.cache_counter("upload", "done").inc()

    async def _put(self, key: str, body: bytes) -> None:
        await self.bucket.put(key, body)
