"""Several mirror processes on one cache directory: one valid cache, one valid audit chain."""

from __future__ import annotations

import hashlib
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mirror.audit import verify_chain
from mirror.store import FilesystemStore
from tests.fixtures.registry import Registry
from tests.fixtures.upstream import FakeUpstream
from tests.mirror_process import MirrorProcess


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as resp:
        return bytes(resp.read())


def test_two_processes_share_one_cache(tmp_path: Path, small_registry: Registry) -> None:
    cache = tmp_path / "cache"
    names = ["itoa", "ryu", "memchr", "serde", "unicode-ident", "cfg-if"]
    with FakeUpstream(small_registry).in_thread() as upstream:
        upstream.faults.add("delay", match="/download", seconds=0.2)
        a = MirrorProcess(cache, upstream=upstream.url + "/").start()
        b = MirrorProcess(cache, upstream=upstream.url + "/").start()
        try:
            urls = [
                f"{m.url}/api/v1/crates/{n}/{small_registry.versions(n)[0]}/download"
                for n in names
                for m in (a, b, a, b)
            ]
            with ThreadPoolExecutor(16) as pool:
                bodies = list(pool.map(_get, urls))
        finally:
            a.stop()
            b.stop()
    expected = {
        hashlib.sha256(small_registry.crate_bytes(n, small_registry.versions(n)[0])).hexdigest()
        for n in names
    }
    assert {hashlib.sha256(body).hexdigest() for body in bodies} == expected
    store = FilesystemStore(cache)
    cached = set(store.iter_crates())
    assert cached == expected
    for cksum in cached:
        assert hashlib.sha256(store.crate_path(cksum).read_bytes()).hexdigest() == cksum
    result = verify_chain(cache / "audit")
    assert result.ok, result.broken
    assert result.events >= len(urls)
