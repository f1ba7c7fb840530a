"""`serve --workers N`: N processes answer on one port; stopping the parent stops them all."""

from __future__ import annotations

import os
import time
import urllib.request
from pathlib import Path

from mirror.audit import read_events, verify_chain
from mirror.index import index_path
from tests.fixtures.registry import Registry
from tests.fixtures.upstream import FakeUpstream
from tests.mirror_process import MirrorProcess


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text() if Path(f"/proc/{pid}/stat").exists() else ""
    return " Z " not in stat  # a zombie is dead, only not yet reaped


def test_workers_serve_and_stop_with_the_parent(tmp_path: Path, small_registry: Registry) -> None:
    with FakeUpstream(small_registry).in_thread() as upstream:
        mirror = MirrorProcess(
            tmp_path / "cache", upstream=upstream.url + "/", extra=["--workers", "2"]
        ).start()
        assert mirror.proc is not None
        workers = _children(mirror.proc.pid)
        try:
            assert len(workers) == 2
            for _ in range(20):
                url = mirror.url + "/index/" + index_path("itoa")
                with urllib.request.urlopen(url, timeout=10) as resp:
                    assert resp.status == 200
        finally:
            mirror.stop()
    deadline = time.monotonic() + 15
    while any(_alive(w) for w in workers):
        assert time.monotonic() < deadline, "worker processes outlived the parent"
        time.sleep(0.1)


def test_workers_share_one_audit_writer_in_the_supervisor(
    tmp_path: Path, small_registry: Registry
) -> None:
    """No writer process per worker: every answer of both workers lands in one valid chain."""
    cache = tmp_path / "cache"
    with FakeUpstream(small_registry).in_thread() as upstream:
        mirror = MirrorProcess(cache, upstream=upstream.url + "/", extra=["--workers", "2"])
        mirror.start()
        assert mirror.proc is not None
        workers = _children(mirror.proc.pid)
        try:
            assert len(workers) == 2
            assert all(_children(w) == [] for w in workers)  # no audit child of their own
            for name in ("itoa", "ryu", "memchr", "serde", "cfg-if", "unicode-ident"):
                url = mirror.url + "/index/" + index_path(name)
                with urllib.request.urlopen(url, timeout=10) as resp:
                    assert resp.status == 200
        finally:
            mirror.stop()
    allowed = {e["crate"] for e in read_events(cache / "audit") if e["action"] == "allow"}
    assert allowed == {"itoa", "ryu", "memchr", "serde", "cfg-if", "unicode-ident"}
    assert verify_chain(cache / "audit").ok


def test_workers_stop_when_the_supervisor_is_killed(
    tmp_path: Path, small_registry: Registry
) -> None:
    """kill -9 of the supervisor (its audit writer with it): workers must not serve unaudited."""
    with FakeUpstream(small_registry).in_thread() as upstream:
        mirror = MirrorProcess(
            tmp_path / "cache", upstream=upstream.url + "/", extra=["--workers", "2"]
        ).start()
        assert mirror.proc is not None
        workers = _children(mirror.proc.pid)
        mirror.kill()
    deadline = time.monotonic() + 15
    while any(_alive(w) for w in workers):
        assert time.monotonic() < deadline, "workers kept serving without their supervisor"
        time.sleep(0.1)
