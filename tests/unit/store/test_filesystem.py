"""Store: content-addressed crates and cached index files, written atomically."""

from __future__ import annotations

import errno
import hashlib
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mirror.errors import IntegrityError, StorageError
from mirror.store import CachedIndex, FilesystemStore
from mirror.store.filesystem import ROOM_MARGIN, SPOOL_BYTES


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def test_index_round_trip_and_corrupt_entries_read_as_missing(tmp_path: Path) -> None:
    store = FilesystemStore(tmp_path)
    entry = CachedIndex(b'{"name":"a"}\n', '"etag"', "Mon, 01 Jan 2024 00:00:00 GMT", 1.5, 9.0)
    assert not store.has_index("serde")
    store.write_index("serde", entry)
    assert store.has_index("serde") and store.read_index("serde") == entry
    store.index_file("serde").write_bytes(b"not json at all\nbody")
    assert store.read_index("serde") is None  # refetched, never served half-understood
    assert store.read_index("never-cached") is None


async def test_a_small_crate_comes_back_verified_and_is_stored_only_when_committed(
    tmp_path: Path,
) -> None:
    store = FilesystemStore(tmp_path)
    data = b"crate bytes" * 100
    cksum = hashlib.sha256(data).hexdigest()
    received = await store.receive_crate(cksum, _chunks(data[:500], data[500:]), 10_000)
    assert received == data and not store.has_crate(cksum)
    assert store.put_crate_bytes(cksum, data).read_bytes() == data and store.has_crate(cksum)

    other = hashlib.sha256(b"other").hexdigest()
    with pytest.raises(IntegrityError, match="checksum mismatch"):
        await store.receive_crate(other, _chunks(b"tampered"), max_bytes=10_000)
    with pytest.raises(IntegrityError, match="limit"):
        await store.receive_crate(other, _chunks(b"x" * 600, b"x" * 600), max_bytes=1000)
    with pytest.raises(IntegrityError, match="checksum mismatch"):
        store.put_crate_bytes(other, b"tampered")  # the commit checks again
    assert not store.has_crate(other)
    assert list(store.tmp_dir.iterdir()) == []  # nothing half-written left behind


async def test_a_small_crate_is_refused_when_the_disk_has_no_room_for_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It is answered before it is committed: a disk that cannot take it is a 507 now."""
    store = FilesystemStore(tmp_path)
    data = b"x" * 1000
    real = os.statvfs(tmp_path)

    class Full:
        f_frsize = real.f_frsize
        f_bavail = (ROOM_MARGIN + len(data)) // real.f_frsize - 1  # one block short

    monkeypatch.setattr(os, "statvfs", lambda _path: Full)
    with pytest.raises(StorageError, match="cache disk is full"):
        await store.receive_crate(hashlib.sha256(data).hexdigest(), _chunks(data), 10_000)


async def test_large_crates_stream_through_a_temp_file_with_the_same_checks(
    tmp_path: Path,
) -> None:
    """Above SPOOL_BYTES a crate is not held in memory: same limit, digest and clean-up."""
    store = FilesystemStore(tmp_path)
    piece = os.urandom(256 * 1024)
    data = piece * ((SPOOL_BYTES // len(piece)) + 3)
    cksum = hashlib.sha256(data).hexdigest()
    parts = [data[i : i + 65536] for i in range(0, len(data), 65536)]
    path = await store.receive_crate(cksum, _chunks(*parts), max_bytes=len(data))
    assert isinstance(path, Path) and path.read_bytes() == data  # committed as it streamed

    other = hashlib.sha256(b"other").hexdigest()
    with pytest.raises(IntegrityError, match="checksum mismatch"):
        await store.receive_crate(other, _chunks(*parts), max_bytes=len(data))
    with pytest.raises(IntegrityError, match="limit"):
        await store.receive_crate(other, _chunks(*parts), max_bytes=len(data) - 1)
    assert not store.has_crate(other)
    assert list(store.tmp_dir.iterdir()) == []


def test_crate_paths_only_from_hex_digests(tmp_path: Path) -> None:
    """Path injection: only a sha256 hex digest can become a crate path."""
    store = FilesystemStore(tmp_path)
    for bad in ("../../etc/passwd", "a" * 63, "A" * 64, "g" * 64, "a" * 64 + "/.."):
        with pytest.raises(IntegrityError):
            store.crate_path(bad)


def test_stale_temp_files_are_removed_fresh_ones_kept(tmp_path: Path) -> None:
    store = FilesystemStore(tmp_path)
    old, new = store.tmp_dir / "crate-1-old.part", store.tmp_dir / "crate-2-new.part"
    old.write_bytes(b"x")
    new.write_bytes(b"y")
    past = time.time() - 7200
    os.utime(old, (past, past))
    assert store.remove_stale_tmp() == 1
    assert [p.name for p in store.tmp_dir.iterdir()] == ["crate-2-new.part"]


def test_disk_full_becomes_a_clear_storage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FilesystemStore(tmp_path)

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("mirror.store.filesystem.write_atomic", full)
    with pytest.raises(StorageError, match="disk is full"):
        store.write_index("serde", CachedIndex(b"", None, None, 0.0))
