"""What a request fetched from upstream is answered before it is written to disk, and the
writes wait until the mirror is quiet (mirror/serving/write_behind.py).

An fsync'd write costs milliseconds (about 8 ms per file on the benchmark machine), and a cold
`cargo fetch` used to wait for one per index file and one per crate. The store here holds
every write until the test lets it through, so an answer that waited for its write would
never come.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import AsyncIterator, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from mirror.errors import StorageError
from mirror.metrics import REGISTRY
from mirror.request_ids import next_request_id
from mirror.serving import open as open_module
from mirror.serving import shared_store
from mirror.serving.core import Client, MirrorCore
from mirror.serving.look_ahead import WORTH_IT_AFTER
from mirror.serving.open import Closer, open_mirror
from mirror.serving.write_behind import HURRIED_LAG, WriteBehind
from mirror.store import CachedIndex, FilesystemStore
from tests.fixtures.registry import Registry
from tests.fixtures.upstream import FakeUpstream

WAIT = 10.0  # seconds an answer may take before the test calls it stuck behind its write


class HeldStore(FilesystemStore):
    """A FilesystemStore whose crate and index writes wait for `release`."""

    instances: list[HeldStore] = []  # noqa: RUF012 (the one made by open_mirror, for the test)

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.release = threading.Event()
        self.fail: StorageError | None = None
        self.written: list[str] = []
        HeldStore.instances.append(self)

    def put_crate_bytes(self, cksum: str, data: bytes) -> Path:
        self.release.wait(WAIT * 3)
        if self.fail is not None:
            raise self.fail
        self.written.append(cksum)
        return super().put_crate_bytes(cksum, data)

    def write_index(self, name: str, entry: CachedIndex) -> None:
        self.release.wait(WAIT * 3)
        self.written.append(name)
        super().write_index(name, entry)


def client() -> Client:
    return Client(next_request_id(), "test")


@pytest.fixture
def held(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    HeldStore.instances.clear()
    monkeypatch.setattr(shared_store, "FilesystemStore", HeldStore)
    yield


@pytest.fixture
async def mirror(
    held: None, small_upstream: FakeUpstream, mirror_settings: Any
) -> AsyncIterator[tuple[MirrorCore, Closer, HeldStore]]:
    core, close = open_mirror(mirror_settings(small_upstream, hot_cache_bytes=0))
    await core.start()
    store = HeldStore.instances[-1]
    try:
        yield core, close, store
    finally:
        store.release.set()
        await close()


async def test_a_new_crate_and_index_file_are_answered_before_their_writes(
    mirror: tuple[MirrorCore, Closer, HeldStore],
    small_upstream: FakeUpstream,
    small_registry: Registry,
) -> None:
    core, close, store = mirror
    version = small_registry.versions("itoa")[-1]
    index = await asyncio.wait_for(core.serve_index("itoa", client()), WAIT)
    answer = await asyncio.wait_for(core.fetch_crate("itoa", version, client()), WAIT)
    assert index.body == small_registry.read_index("itoa")
    assert answer.crate.read() == small_registry.crate_bytes("itoa", version)
    assert store.written == [] and not store.has_crate(answer.line.cksum)
    # Before its write, the crate is still answered from memory, not fetched again.
    again = await asyncio.wait_for(core.fetch_crate("itoa", version, client()), WAIT)
    assert again.crate.was_cached and small_upstream.requests.count("download") == 1

    store.release.set()
    await close()  # waits for what is still to be written
    assert store.has_crate(answer.line.cksum)
    disk = store.read_index("itoa")
    assert disk is not None and disk.body == index.body


async def test_of_two_copies_waiting_to_be_written_the_newer_one_lands(
    mirror: tuple[MirrorCore, Closer, HeldStore], small_registry: Registry
) -> None:
    core, close, store = mirror
    await core.serve_index("ryu", client())  # its write now waits (quiet, then the store)
    small_registry.add_crate("ryu", "9.9.9", {"src/lib.rs": b""})
    newer = await core.indexes.recheck("ryu", await core.indexes.get("ryu"), "test")
    store.release.set()
    await close()
    disk = store.read_index("ryu")
    assert disk is not None and disk.body == newer.index.raw
    assert store.written.count("ryu") <= 2  # the older copy at most once, then the newer


async def test_a_commit_that_fails_is_logged_and_the_crate_fetched_again(
    mirror: tuple[MirrorCore, Closer, HeldStore],
    small_upstream: FakeUpstream,
    small_registry: Registry,
) -> None:
    """The client has its verified crate either way; the cache just does not keep it."""
    core, _, store = mirror
    version = small_registry.versions("memchr")[-1]
    store.fail = StorageError("cache disk is full while writing a crate")
    store.release.set()
    with capture_logs() as logs:
        first = await core.fetch_crate("memchr", version, client())
        await core.writes.flush()
    assert first.crate.read() == small_registry.crate_bytes("memchr", version)
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["crate.commit_failed"]
    store.fail = None
    await core.fetch_crate("memchr", version, client())
    assert small_upstream.requests.count("download") == 2
    await core.writes.flush()
    assert store.has_crate(first.line.cksum)


# -- WriteBehind itself: when the queued writes go ------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Log:
    """What the writer thread wrote and what was settled on the loop, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, int]] = []  # (what, key, thread id)

    def put(self, writes: WriteBehind, key: str, size: int = 1) -> None:
        writes.put(
            key,
            lambda: self.events.append(("write", key, threading.get_ident())),
            lambda: self.events.append(("settle", key, threading.get_ident())),
            size,
        )

    def of(self, what: str) -> list[str]:
        return [key for kind, key, _ in self.events if kind == what]


async def test_writes_wait_for_a_quiet_moment_but_never_longer_than_max_lag() -> None:
    clock = Clock()
    writes = WriteBehind(quiet=0.2, max_lag=5.0, max_bytes=1000, clock=clock)
    log = Log()
    log.put(writes, "a")
    assert writes.due_in() == pytest.approx(0.2)
    for _ in range(10):  # a burst: a new write every 0.1 s keeps pushing the batch back
        clock.now += 0.1
        log.put(writes, "b")
        assert writes.due_in() == pytest.approx(0.2)
    clock.now += 4.0  # 5.0 s after "a": the batch is due however busy the mirror is
    log.put(writes, "c")
    assert writes.due_in() == pytest.approx(0.0)
    assert log.events == []  # nothing ran: the fake clock never told the loop to go
    await writes.flush()


async def test_behind_a_distant_upstream_writes_land_within_the_hurried_lag() -> None:
    """Other workers see only what landed: while upstream is far away, a busy
    mirror's writes still land within HURRIED_LAG, not MAX_LAG."""
    clock, far = Clock(), [True]
    writes = WriteBehind(quiet=0.2, max_lag=5.0, max_bytes=1000, clock=clock, hurry=lambda: far[0])
    log = Log()
    log.put(writes, "a")
    clock.now += 0.05
    log.put(writes, "b")  # busy: the quiet moment moves on ...
    assert writes.due_in() == pytest.approx(HURRIED_LAG - 0.05)  # ... the hurried lag does not
    far[0] = False  # upstream answers quickly now: the writes may wait for a quiet moment
    assert writes.due_in() == pytest.approx(0.2)
    await writes.flush()


async def test_max_bytes_held_starts_a_batch_at_once() -> None:
    clock = Clock()
    writes = WriteBehind(quiet=1000.0, max_lag=1000.0, max_bytes=100, clock=clock)
    log = Log()
    log.put(writes, "small", 60)
    assert writes.due_in() > 999
    log.put(writes, "large", 60)
    assert writes.due_in() == 0.0
    for _ in range(200):  # no flush, no clock: the byte limit alone lets the batch go
        if log.of("settle") == ["small", "large"]:
            break
        await asyncio.sleep(0.01)
    assert log.of("write") == ["small", "large"] and writes.queued == 0


async def test_a_quiet_moment_writes_the_whole_batch_on_one_thread() -> None:
    writes = WriteBehind(quiet=0.01)
    log = Log()
    for key in ("a", "b", "c"):
        log.put(writes, key)
    for _ in range(500):
        if len(log.of("settle")) == 3:
            break
        await asyncio.sleep(0.01)
    assert log.of("write") == ["a", "b", "c"] and log.of("settle") == ["a", "b", "c"]
    loop_thread = threading.get_ident()
    writers = {tid for kind, _, tid in log.events if kind == "write"}
    settlers = {tid for kind, _, tid in log.events if kind == "settle"}
    assert len(writers) == 1 and loop_thread not in writers  # one hop for the batch
    assert settlers == {loop_thread}  # the owners' pending copies change on the loop only


async def test_the_metric_counts_what_is_not_in_the_store_yet() -> None:
    writes = WriteBehind(quiet=1000.0, max_lag=1000.0)
    log = Log()
    log.put(writes, "a")
    log.put(writes, "b")
    assert REGISTRY.get_sample_value("crate_mirror_store_writes_queued") == 2
    await asyncio.wait_for(writes.flush(), WAIT)
    assert REGISTRY.get_sample_value("crate_mirror_store_writes_queued") == 0


async def test_flush_writes_now_and_only_the_newest_copy_of_a_key() -> None:
    writes = WriteBehind(quiet=1000.0, max_lag=1000.0)
    log = Log()
    written: list[str] = []
    writes.put("x", lambda: written.append("old"), lambda: written.append("old settled"), 1)
    writes.put("x", lambda: written.append("new"), lambda: written.append("new settled"), 1)
    log.put(writes, "y")
    assert writes.queued == 2
    await asyncio.wait_for(writes.flush(), WAIT)
    assert written == ["new", "new settled"] and log.of("write") == ["y"]
    assert writes.queued == 0


async def test_a_write_that_raises_is_logged_and_the_others_still_land() -> None:
    writes = WriteBehind(quiet=1000.0)
    log = Log()

    def broken() -> None:
        raise RuntimeError("a bug in one store call")

    log.put(writes, "before")
    writes.put("broken", broken, lambda: log.events.append(("settle", "broken", 0)), 1)
    log.put(writes, "after")
    with capture_logs() as logs:
        await asyncio.wait_for(writes.flush(), WAIT)
    assert log.of("write") == ["before", "after"]
    assert log.of("settle") == ["before", "broken", "after"]
    assert [e["event"] for e in logs] == ["write_behind.failed"]


@pytest.fixture
def slow_to_settle(monkeypatch: pytest.MonkeyPatch) -> None:
    """The mirror's writes wait for a minute of quiet: only flush lets them go."""
    monkeypatch.setattr(open_module, "WriteBehind", partial(WriteBehind, quiet=60, max_lag=60))


async def test_a_burst_of_cold_requests_writes_nothing_until_it_is_over(
    slow_to_settle: None, mirror: tuple[MirrorCore, Closer, HeldStore], small_registry: Registry
) -> None:
    """The point of waiting: no store write competes with the requests of a cold build."""
    core, _, store = mirror
    store.release.set()  # the store would write at once if asked
    names = ["itoa", "ryu", "memchr"]
    cksums = []
    for name in names:
        version = small_registry.versions(name)[-1]
        await core.fetch_crate(name, version, client())
        cksums.append(hashlib.sha256(small_registry.crate_bytes(name, version)).hexdigest())
    assert store.written == []
    assert core.writes.queued == 2 * len(names)  # an index file and a crate each
    await asyncio.wait_for(core.writes.flush(), WAIT)
    assert sorted(store.written) == sorted(names + cksums)


@pytest.mark.parametrize(("workers", "hurried"), [(1, False), (2, True)])
async def test_a_distant_upstream_hurries_the_writes_only_when_other_workers_read_them(
    small_registry: Registry, mirror_settings: Any, workers: int, hurried: bool
) -> None:
    """With one worker, only this process reads its pending copies."""
    async with FakeUpstream(small_registry, latency=2 * WORTH_IT_AFTER) as upstream:
        core, close = open_mirror(mirror_settings(upstream, workers=workers))
        try:
            await core.start()
            assert not core.writes.hurried  # how far upstream is: not known yet
            for name in ("itoa", "ryu", "memchr"):
                await core.serve_index(name, Client(next_request_id(), "test"))
            assert core.writes.hurried is hurried
        finally:
            await close()
