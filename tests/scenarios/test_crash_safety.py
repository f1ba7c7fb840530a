"""kill -9 while a crate is being written leaves nothing that is later served half-written."""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from mirror.index import index_path
from mirror.store import FilesystemStore
from tests.fixtures.registry import Registry
from tests.fixtures.upstream import FakeUpstream
from tests.mirror_process import MirrorProcess


def _get(url: str, timeout: float = 30) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return bytes(resp.read())


def test_kill_during_download_leaves_no_partial_crate(
    tmp_path: Path, small_registry: Registry
) -> None:
    cache = tmp_path / "cache"
    version = small_registry.versions("serde")[0]
    expected = small_registry.crate_bytes("serde", version)
    dl = f"/api/v1/crates/serde/{version}/download"
    with FakeUpstream(small_registry).in_thread() as upstream:
        # Half the body, then silence: the mirror is mid-write when it dies.
        upstream.faults.add("stall", match="/serde/", seconds=20, times=1)
        mirror = MirrorProcess(cache, upstream=upstream.url + "/").start()
        try:
            _get(mirror.url + "/index/" + index_path("serde"))
            client = threading.Thread(
                target=lambda: _swallow(lambda: _get(mirror.url + dl, timeout=25)), daemon=True
            )
            client.start()
            deadline = time.monotonic() + 15
            # Small crates are verified in memory before any byte goes to disk, so "mid-write"
            # is: upstream has sent half the body (the stall), and the mirror holds it.
            while not upstream.requests.count(dl):
                assert time.monotonic() < deadline, "the mirror never started downloading"
                time.sleep(0.05)
            time.sleep(0.3)
            mirror.kill()
        finally:
            mirror.kill()

        assert (
            list(FilesystemStore(cache).iter_crates()) == []
        )  # nothing half-written became an entry
        restarted = MirrorProcess(cache, upstream=upstream.url + "/").start()
        try:
            body = _get(restarted.url + dl)
        finally:
            restarted.stop()
    assert hashlib.sha256(body).digest() == hashlib.sha256(expected).digest()
    assert [
        FilesystemStore(cache).crate_path(c).read_bytes() == expected
        for c in FilesystemStore(cache).iter_crates()
    ] == [True]


def _swallow(call: Callable[[], object]) -> None:
    with contextlib.suppress(urllib.error.URLError, OSError):
        call()
