"""`serve --workers N`: N processes answer on one port; stopping the parent stops them all."""

from __future__ import annotations

import os
import time
import urllib.request
from pathlib import Path

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
