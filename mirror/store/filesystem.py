"""`FilesystemStore`: the cache in a local directory (the `Store` interface, mirror.store.base).

Layout under the cache directory (documented in docs/serving.md, "Cache layout"):

    crates/<sha256[0:2]>/<sha256>.crate   complete, verified crates only (name = content hash)
    index/<sparse index path>             one upstream index file: a JSON header line, then body
    config/upstream-config.json           upstream's config.json, for offline start-up
    scans/<sha256[0:2]>/<sha256>.json     the capability scan of the crate with that sha256
    tmp/                                  files being written; never read as cache entries

Crash safety: everything is written to tmp/, fsynced, and `os.replace`d into place, so a
`kill -9` at any moment leaves either the old entry or the complete new one, never a partial
file under crates/ or index/. Several processes may share one directory: writers of the same
crate produce identical bytes and the last rename wins harmlessly.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import json
import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiofiles

from mirror.errors import IntegrityError, StorageError
from mirror.files import fsync_directory, write_atomic
from mirror.index import index_path
from mirror.store.base import STALE_TMP_SECONDS, CachedIndex

_SHA256_RE = re.compile(r"[0-9a-f]{64}\Z")
SPOOL_BYTES = 2**20  # crates up to this size are verified in memory, then written at once
PROBE_BYTES = 4096  # bytes the writability probe writes and syncs (one page)
ROOM_MARGIN = 2**20  # bytes a crate may not eat into: directory blocks, concurrent commits


class FilesystemStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.crates_dir = root / "crates"
        self.index_dir = root / "index"
        self.scans_dir = root / "scans"
        self._scans_prefix = f"{self.scans_dir}{os.sep}"
        self.tmp_dir = root / "tmp"
        self.config_file = root / "config" / "upstream-config.json"
        dirs = (
            self.crates_dir,
            self.index_dir,
            self.scans_dir,
            self.tmp_dir,
            self.config_file.parent,
        )
        try:
            for d in dirs:
                d.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StorageError(f"cannot create cache directory {root}: {e.strerror}") from e

    # -- lifetime: nothing to open or finish -------------------------------------------------

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    # -- crates -------------------------------------------------------------------------------

    async def load_crate(self, cksum: str, max_bytes: int) -> Path | None:
        return None  # nothing is shared: a crate not in the directory is nowhere

    def crate_path(self, cksum: str) -> Path:
        return self.crates_dir / fan_out(cksum, ".crate")

    def has_crate(self, cksum: str) -> bool:
        return self.crate_path(cksum).is_file()

    async def receive_crate(
        self, cksum: str, chunks: AsyncIterator[bytes], max_bytes: int
    ) -> bytes | Path:
        """Stream a download in and verify it: its sha256 must be `cksum`.

        The size limit is enforced while streaming (an endless body costs at most max_bytes),
        and a mismatch or a short body leaves nothing behind. Most crates are small: those are
        verified in memory and come back as bytes, not yet stored, so the caller can answer at
        once and commit them with `put_crate_bytes` afterwards (two fsyncs, ~8 ms here, that a
        cold `cargo fetch` would otherwise wait for on every crate). They are refused with
        StorageError when the disk has no room for them. A large crate goes through a temp
        file, never whole in memory, is committed, and its path comes back.
        """
        digest = hashlib.sha256()
        held: list[bytes] = []
        size = 0
        async for chunk in chunks:
            size += len(chunk)
            _check_size(size, max_bytes)
            digest.update(chunk)
            held.append(chunk)
            if size > SPOOL_BYTES:
                return await self._stream_crate(cksum, held, chunks, digest, size, max_bytes)
        _check_digest(digest, cksum, size)
        self._check_room(size)
        return b"".join(held)

    def _check_room(self, size: int) -> None:
        """A crate answered now is committed later: refuse it (507) if it could not be."""
        try:
            stat = os.statvfs(self.root)
        except OSError as e:
            raise _storage_error(e, "checking the cache's free space") from e
        if stat.f_bavail * stat.f_frsize < size + ROOM_MARGIN:
            raise StorageError("cache disk is full while storing a crate")

    async def _stream_crate(
        self,
        cksum: str,
        held: list[bytes],
        chunks: AsyncIterator[bytes],
        digest: Any,
        size: int,
        max_bytes: int,
    ) -> Path:
        """A large crate: through a temp file, never whole in memory."""
        final = self.crate_path(cksum)
        tmp = self._tmp_name("crate")
        try:
            async with aiofiles.open(tmp, "wb") as out:
                await out.write(b"".join(held))
                held.clear()
                async for chunk in chunks:
                    size += len(chunk)
                    _check_size(size, max_bytes)
                    digest.update(chunk)
                    await out.write(chunk)
                await out.flush()
                await asyncio.to_thread(os.fsync, out.fileno())
            _check_digest(digest, cksum, size)
            await asyncio.to_thread(self._commit, tmp, final)
        except OSError as e:
            raise _storage_error(e, "writing a crate") from e
        finally:
            _unlink_quietly(tmp)
        return final

    def put_crate_bytes(self, cksum: str, data: bytes) -> Path:
        """Synchronous commit of bytes already in memory (a received crate, an import)."""
        if hashlib.sha256(data).hexdigest() != cksum:
            raise IntegrityError(f"checksum mismatch for {cksum}")
        final = self.crate_path(cksum)
        try:
            self._write_atomic(final, data)
        except OSError as e:
            raise _storage_error(e, "writing a crate") from e
        return final

    def iter_crates(self) -> Iterator[str]:
        for path in self.crates_dir.glob("*/*.crate"):
            if _SHA256_RE.match(path.stem):
                yield path.stem

    # -- index files --------------------------------------------------------------------------

    def index_file(self, name: str) -> Path:
        return self.index_dir / index_path(name)

    def has_index(self, name: str) -> bool:
        return self.index_file(name).is_file()

    def read_index(self, name: str) -> CachedIndex | None:
        """The cached index file, or None if absent or unreadable (then it is fetched again)."""
        try:
            raw = self.index_file(name).read_bytes()
        except OSError:
            return None
        header, sep, body = raw.partition(b"\n")
        if not sep:
            return None
        try:
            return CachedIndex.from_meta(body, json.loads(header))
        except (ValueError, KeyError, TypeError):
            return None

    def write_index(self, name: str, entry: CachedIndex) -> None:
        header = json.dumps(entry.meta(), separators=(",", ":")).encode()
        try:
            self._write_atomic(self.index_file(name), header + b"\n" + entry.body)
        except OSError as e:
            raise _storage_error(e, "writing an index file") from e

    def iter_index_names(self) -> Iterator[str]:
        for path in self.index_dir.rglob("*"):
            if path.is_file():
                yield path.name

    # -- upstream config ----------------------------------------------------------------------

    def read_upstream_config(self) -> bytes | None:
        try:
            return self.config_file.read_bytes()
        except OSError:
            return None

    def write_upstream_config(self, body: bytes) -> None:
        try:
            self._write_atomic(self.config_file, body)
        except OSError as e:
            raise _storage_error(e, "writing upstream config") from e

    # -- scan reports -------------------------------------------------------------------------

    def read_scan(self, sha256: str) -> bytes | None:
        # Asked for every version of an index file a view judges, mostly in vain on a cold
        # cache: a plain string path and `open` miss in 5 µs, pathlib's in 18.
        try:
            with open(self._scans_prefix + fan_out(sha256, ".json"), "rb") as f:
                return f.read()
        except OSError:
            return None

    def write_scan(self, sha256: str, body: bytes) -> None:
        try:
            self._write_atomic(self.scans_dir / fan_out(sha256, ".json"), body)
        except OSError as e:
            raise _storage_error(e, "writing a scan report") from e

    async def load_scan(self, sha256: str) -> bytes | None:
        return None  # nothing is shared

    def iter_scans(self) -> Iterator[str]:
        for path in self.scans_dir.glob("??/*.json"):
            if _SHA256_RE.match(path.stem):
                yield path.stem

    # -- maintenance --------------------------------------------------------------------------

    def remove_stale_tmp(self, older_than: float = STALE_TMP_SECONDS) -> int:
        """Delete temp files left by crashed processes; returns how many."""
        cutoff = time.time() - older_than
        removed = 0
        for path in self.tmp_dir.iterdir():
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except OSError:
                continue
        return removed

    # -- internals ----------------------------------------------------------------------------

    def check_writable(self) -> None:
        # One page, not one byte: a disk with a few bytes left but no free block must fail.
        probe = self._tmp_name("ready")
        try:
            with open(probe, "wb") as out:
                out.write(b"\0" * PROBE_BYTES)
                out.flush()
                os.fsync(out.fileno())
        except OSError as e:
            raise _storage_error(e, "checking that the cache is writable") from e
        finally:
            _unlink_quietly(probe)

    def _tmp_name(self, kind: str) -> Path:
        return self.tmp_dir / f"{kind}-{os.getpid()}-{uuid.uuid4().hex}.part"

    def _write_atomic(self, final: Path, data: bytes) -> None:
        write_atomic(final, data, tmp_dir=self.tmp_dir)

    @staticmethod
    def _commit(tmp: Path, final: Path) -> None:
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, final)
        fsync_directory(final.parent)


def fan_out(sha256: str, suffix: str) -> str:
    """`ab/abcd....suffix`: 256 directories instead of one huge one."""
    # Path-injection defence: only a well-formed hex digest ever becomes a path.
    if not _SHA256_RE.match(sha256):
        raise IntegrityError(f"malformed sha256 {sha256[:80]!r}")
    return f"{sha256[:2]}/{sha256}{suffix}"


def _check_size(size: int, max_bytes: int) -> None:
    if size > max_bytes:
        raise IntegrityError(f"download exceeds the {max_bytes}-byte limit")


def _check_digest(digest: Any, cksum: str, size: int) -> None:
    actual = digest.hexdigest()
    if actual != cksum:
        # Tampering or corruption in transit: the index is the authority.
        raise IntegrityError(
            f"checksum mismatch: index says {cksum}, upstream sent {actual} ({size} bytes)"
        )


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError:
        pass


def _storage_error(e: OSError, doing: str) -> StorageError:
    if e.errno == errno.ENOSPC:
        return StorageError(f"cache disk is full while {doing}")
    return StorageError(f"cache write failed while {doing}: {e.strerror}")
