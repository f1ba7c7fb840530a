"""What a request fetched from upstream is answered before it is written to disk.

An fsync'd write costs milliseconds (about 8 ms per file on the benchmark machine), and a cold
`cargo fetch` used to wait for one per index file and one per crate. The store here holds
every write until the test lets it through, so an answer that waited for its write would
never come.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from mirror.errors import StorageError
from mirror.request_ids import next_request_id
from mirror.serving import shared_store
from mirror.serving.core import Client, MirrorCore
from mirror.serving.open import Closer, open_mirror
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
    await core.serve_index("ryu", client())  # its write now waits in a thread
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
        await core.crates.flush()
    assert first.crate.read() == small_registry.crate_bytes("memchr", version)
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["crate.commit_failed"]
    store.fail = None
    await core.fetch_crate("memchr", version, client())
    assert small_upstream.requests.count("download") == 2
    await core.crates.flush()
    assert store.has_crate(first.line.cksum)
