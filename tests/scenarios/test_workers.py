"""`serve --workers N`: N processes answer on one port; stopping the parent stops them all."""

from __future__ import annotations

import contextlib
import http.client
import os
import socket
import threading
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
    """Whether any thread of `pid` still runs: a process whose main thread is a zombie may
    still have threads exiting, and its sockets close only when the last one is gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    states = []
    for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
        with contextlib.suppress(OSError):
            states.append(stat.read_text().rsplit(")", 1)[-1].split()[0])
    return any(state not in ("Z", "X") for state in states)


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


SLOW_DOWNLOAD = 4.0  # seconds upstream takes per download in the kill test
STOP_SERVING_WITHIN = 1.0  # seconds after the supervisor's death (issue 16)


def test_workers_stop_serving_within_a_second_of_the_supervisors_death(
    tmp_path: Path, small_registry: Registry
) -> None:
    """kill -9 of the supervisor (its audit writer with it) while cold downloads wait on a slow
    upstream: nobody audits the workers any more, so none of those downloads may be answered,
    new connections are refused, and the workers are gone, all within a second."""
    outcomes: list[tuple[float, object]] = []  # (monotonic time, status or exception)

    def download(url: str) -> None:
        try:
            with urllib.request.urlopen(url, timeout=30) as resp:
                resp.read()
                outcomes.append((time.monotonic(), resp.status))
        except (OSError, http.client.HTTPException) as e:
            outcomes.append((time.monotonic(), e))

    with FakeUpstream(small_registry).in_thread() as upstream:
        upstream.faults.add("delay", match="/download", seconds=SLOW_DOWNLOAD)
        mirror = MirrorProcess(
            tmp_path / "cache", upstream=upstream.url + "/", extra=["--workers", "2"]
        ).start()
        assert mirror.proc is not None
        workers = _children(mirror.proc.pid)
        assert len(workers) == 2
        urls = [
            f"{mirror.url}/api/v1/crates/{name}/{small_registry.versions(name)[-1]}/download"
            for name in small_registry.names()
        ]
        threads = [threading.Thread(target=download, args=(url,)) for url in urls]
        for thread in threads:
            thread.start()
        time.sleep(1.0)  # every download now waits on the slow upstream
        killed_at = time.monotonic()
        mirror.kill()
        time.sleep(max(0.0, killed_at + STOP_SERVING_WITHIN - time.monotonic()))
        alive_after = [w for w in workers if _alive(w)]
        refused = False
        try:
            socket.create_connection(("127.0.0.1", mirror.port), timeout=1).close()
        except ConnectionRefusedError:
            refused = True
        for thread in threads:
            thread.join(SLOW_DOWNLOAD + 10)
    assert alive_after == [], "workers outlived their supervisor by more than a second"
    assert refused, "a worker still accepted connections after its supervisor died"
    assert len(outcomes) == len(urls)
    late = [(round(at - killed_at, 2), outcome) for at, outcome in outcomes if outcome == 200]
    assert late == [], "downloads were served, unaudited, after the supervisor died"
