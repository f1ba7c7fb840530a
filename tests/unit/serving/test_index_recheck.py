"""A download the cached index file contradicts makes the core ask upstream once more.

The cached copy is fresh for an hour in every test here, so whatever is fixed is fixed by
the recheck, not by the TTL running out.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from mirror.errors import IntegrityError, NotFound
from mirror.request_ids import next_request_id
from mirror.serving.core import Client, MirrorCore
from mirror.serving.open import open_mirror
from tests.fixtures.registry import Registry
from tests.fixtures.upstream import FakeUpstream


def client() -> Client:
    return Client(next_request_id(), "test")


@pytest.fixture
async def core(small_upstream: FakeUpstream, mirror_settings: Any) -> AsyncIterator[MirrorCore]:
    core, close = open_mirror(mirror_settings(small_upstream, index_ttl=3600.0))
    await core.start()
    try:
        yield core
    finally:
        await close()


def index_fetches(upstream: FakeUpstream, name: str) -> int:
    return sum(1 for r in upstream.requests.all() if r.path.endswith("/" + name))


async def test_a_version_missing_from_a_corrupted_copy_is_served(
    core: MirrorCore, small_upstream: FakeUpstream, small_registry: Registry
) -> None:
    """A byte flipped in transit spoils a version's line (kept, matching no download); the
    rest of the file parses, so the copy was cached as fresh."""
    version = small_registry.versions("itoa")[-1]
    real = small_registry.read_index("itoa")
    small_upstream.faults.add(
        "flip", match="/it/oa/itoa", times=1, offset=real.index(b'"vers":"') + 8
    )
    assert (await core.serve_index("itoa", client())).body != real  # the corrupted copy
    answer = await core.fetch_crate("itoa", version, client())
    assert answer.crate.read() == small_registry.crate_bytes("itoa", version)
    assert (await core.serve_index("itoa", client())).body == real  # and the copy is replaced
    assert index_fetches(small_upstream, "itoa") == 2


async def test_a_wrong_cksum_in_the_copy_is_fetched_again_not_blamed_on_the_crate(
    core: MirrorCore, small_upstream: FakeUpstream, small_registry: Registry
) -> None:
    """The copy arrived with another valid cksum (as a corrupting proxy or CDN could send)."""
    version = small_registry.versions("ryu")[-1]
    real = small_registry.read_index("ryu")
    small_registry.rewrite_index(
        "ryu",
        lambda lines: [{**e, "cksum": "0" * 64} if e["vers"] == version else e for e in lines],
    )
    await core.serve_index("ryu", client())  # cached: fresh for an hour
    small_registry.write_index("ryu", real)
    answer = await core.fetch_crate("ryu", version, client())
    assert answer.crate.read() == small_registry.crate_bytes("ryu", version)
    assert answer.line.cksum == small_registry.entries("ryu")[-1]["cksum"]
    assert small_upstream.requests.count("download") == 2  # once judged wrongly, once right
    assert (await core.serve_index("ryu", client())).body == real


async def test_a_corrupted_crate_is_still_a_502_after_one_recheck(
    core: MirrorCore, small_upstream: FakeUpstream, small_registry: Registry
) -> None:
    """Upstream's index agrees with our copy: the crate was wrong, and nothing loops."""
    version = small_registry.versions("memchr")[-1]
    small_upstream.faults.add("flip", match="/download", times=1)
    with pytest.raises(IntegrityError, match="checksum mismatch"):
        await core.fetch_crate("memchr", version, client())
    assert index_fetches(small_upstream, "memchr") == 2  # the first fetch and one recheck
    assert small_upstream.requests.count("download") == 1
    answer = await core.fetch_crate("memchr", version, client())  # the next one is fine
    assert answer.crate.read() == small_registry.crate_bytes("memchr", version)


async def test_an_unknown_version_costs_one_shared_recheck_then_404(
    core: MirrorCore, small_upstream: FakeUpstream
) -> None:
    await core.serve_index("serde", client())
    small_upstream.faults.add("delay", match="/se/rd/serde", times=1, seconds=0.3)
    results = await asyncio.gather(
        *(core.fetch_crate("serde", "99.0.0", client()) for _ in range(10)),
        return_exceptions=True,
    )
    assert all(isinstance(r, NotFound) for r in results)
    assert index_fetches(small_upstream, "serde") == 2  # ten requests, one recheck


async def test_a_version_published_within_the_ttl_is_found(
    core: MirrorCore, small_upstream: FakeUpstream, small_registry: Registry
) -> None:
    """The same path serves a version published after our copy was fetched."""
    await core.serve_index("cfg-if", client())
    entry = small_registry.add_crate("cfg-if", "9.0.0", {"src/lib.rs": b"pub fn x() {}\n"})
    answer = await core.fetch_crate("cfg-if", "9.0.0", client())
    assert answer.line.cksum == entry["cksum"]


async def test_when_upstream_fails_the_recheck_the_404_stands_and_the_copy_is_not_fresh(
    core: MirrorCore, small_upstream: FakeUpstream
) -> None:
    entry_before = await core.indexes.get("itoa")
    small_upstream.faults.add("error", match="/it/oa/itoa")
    with pytest.raises(NotFound):
        await core.fetch_crate("itoa", "99.0.0", client())
    assert not core.indexes.is_fresh(entry_before)  # the next request asks upstream first


async def test_offline_nothing_is_asked(mirror_settings: Any) -> None:
    core, close = open_mirror(mirror_settings(None, offline=True))
    try:
        with pytest.raises(NotFound):
            await core.fetch_crate("itoa", "1.0.0", client())
    finally:
        await close()
