"""Disk full while writing: a clear error, nothing half-written served, cached content still served.

The cache lives on a 4 MiB tmpfs that the test fills up. Needs mount permission (root, as in
CI); elsewhere the test is skipped with the reason.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.soak import check_cache, known_cksums
from mirror.audit import verify_chain
from mirror.index import index_path
from tests.fixtures.registry import Registry
from tests.fixtures.upstream import FakeUpstream
from tests.mirror_process import MirrorProcess

TMPFS_SIZE = "4m"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs", str(mount_point)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a size-limited tmpfs here: {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _wait_until_stored(base: str) -> None:
    """The mirror writes what it answered from memory once it is quiet: wait for that."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        metrics = _get(base + "/metrics")[1].decode()
        if "crate_mirror_store_writes_queued 0.0" in metrics:
            return
        time.sleep(0.1)
    raise AssertionError("the mirror did not write what it answered within 30 s")


def _fill(path: Path) -> None:
    """Write until the file system says ENOSPC."""
    try:
        with open(path, "wb") as f:
            block = b"\0" * 65536
            while True:
                f.write(block)
                f.flush()
    except OSError as e:  # from a write, or from the close that flushes the rest
        assert e.errno == errno.ENOSPC
    with contextlib.suppress(OSError), open(path, "ab") as f:
        while True:  # the last few bytes, in small writes
            f.write(b"\0" * 512)
            f.flush()


def test_disk_full_is_a_clear_error_and_cached_crates_keep_flowing(
    small_disk: Path, small_registry: Registry
) -> None:
    cache = small_disk / "cache"
    small, big = "itoa", "serde"
    small_v, big_v = small_registry.versions(small)[0], small_registry.versions(big)[-1]
    with FakeUpstream(small_registry).in_thread() as upstream:
        mirror = MirrorProcess(cache, upstream=upstream.url + "/").start()
        try:
            dl_small = f"{mirror.url}/api/v1/crates/{small}/{small_v}/download"
            dl_big = f"{mirror.url}/api/v1/crates/{big}/{big_v}/download"
            assert _get(dl_small) == (200, small_registry.crate_bytes(small, small_v))
            assert _get(mirror.url + "/index/" + index_path(big))[0] == 200
            _wait_until_stored(mirror.url)  # cached before the disk fills, not only in memory

            _fill(small_disk / "filler")
            status, body = _get(dl_big)
            assert status == 507, body
            assert b"disk is full" in body
            assert big_v.encode() not in body or b"crate-mirror:" in body
            assert check_cache(cache, known_cksums(small_registry)) == []  # nothing half-written
            assert not any(p.stat().st_size for p in (cache / "tmp").glob("*"))

            # Already-cached content is still served while the disk stays full.
            for _ in range(3):
                assert _get(dl_small) == (200, small_registry.crate_bytes(small, small_v))
                assert _get(mirror.url + "/index/" + index_path(small))[0] == 200
            assert _get(mirror.url + "/healthz")[0] == 200  # alive ...
            status, body = _get(mirror.url + "/readyz")  # ... but not ready for more builds
            assert status == 503
            assert b"cache: cache disk is full" in body

            # Space comes back: the same request now succeeds, verified.
            os.unlink(small_disk / "filler")
            status, body = _get(dl_big)
            assert status == 200
            assert (
                hashlib.sha256(body).digest()
                == hashlib.sha256(small_registry.crate_bytes(big, big_v)).digest()
            )
        finally:
            mirror.stop()
    assert check_cache(cache, known_cksums(small_registry)) == []
    # Audit appends refused by the full disk were kept and written once space came back
    # (a half-written line would have been moved aside and recorded): the chain holds.
    audit = verify_chain(cache / "audit")
    assert audit.ok, str(audit.broken)
    assert audit.events >= 4
