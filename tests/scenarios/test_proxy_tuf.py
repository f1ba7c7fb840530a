"""The proxy with a TUF-signed upstream: index files are verified before caching or serving."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from mirror.audit import read_events
from mirror.config import Settings
from mirror.index import index_path
from mirror.store import FilesystemStore
from tests.fixtures.registry import Registry
from tests.fixtures.tuf_repo import SignedUpstream, static_app
from tests.fixtures.upstream import FakeUpstream

NAMES = ("itoa", "ryu", "memchr")


@pytest.fixture
def signed(tmp_path: Path, small_registry: Registry) -> SignedUpstream:
    files = {index_path(n): small_registry.read_index(n) for n in NAMES}
    return SignedUpstream(tmp_path / "tuf-upstream", files)


async def _trusting(signed: SignedUpstream, aiohttp_server: Any, tmp_path: Path) -> dict[str, Any]:
    """The `tuf:` settings of a mirror that pins `signed`'s root and reads its metadata."""
    metadata = await aiohttp_server(static_app(signed.metadata_dir))
    root = tmp_path / "pinned-root.json"
    root.write_bytes((signed.metadata_dir / "1.root.json").read_bytes())
    return {
        "upstream": {
            "metadata_url": str(metadata.make_url("/")),
            "trusted_root": str(root),
            "metadata_dir": str(tmp_path / "tuf-client"),
        }
    }


@pytest.fixture
async def client(
    aiohttp_client: Any,
    aiohttp_server: Any,
    mirror_app: Callable[[Settings], web.Application],
    mirror_settings: Callable[..., Settings],
    small_upstream: FakeUpstream,
    signed: SignedUpstream,
    tmp_path: Path,
) -> TestClient[Any, Any]:
    tuf = await _trusting(signed, aiohttp_server, tmp_path)
    settings = mirror_settings(small_upstream, tuf=tuf, index_ttl=0)
    result: TestClient[Any, Any] = await aiohttp_client(mirror_app(settings))
    return result


async def test_signed_index_file_is_served(
    client: TestClient[Any, Any], small_registry: Registry
) -> None:
    resp = await client.get("/index/" + index_path("itoa"))
    assert resp.status == 200
    assert await resp.read() == small_registry.read_index("itoa")


async def test_tampered_index_file_is_refused_and_not_cached(
    client: TestClient[Any, Any],
    small_registry: Registry,
    mirror_settings: Callable[..., Settings],
) -> None:
    """A compromised registry or CDN serving other bytes than were signed: fail closed."""
    original = small_registry.read_index("ryu")
    evil = original.replace(b'"cksum":"', b'"cksum":"0', 1)[:-1] + b"\n"
    small_registry.write_index("ryu", evil)
    resp = await client.get("/index/" + index_path("ryu"))
    assert resp.status == 502
    assert "ryu" in await resp.text()
    cache = mirror_settings(None).cache_dir
    assert FilesystemStore(cache).read_index("ryu") is None
    await client.close()  # flushes the audit log
    events = [e for e in read_events(cache / "audit") if e.get("rule") == "tuf"]
    assert events and events[0]["action"] == "block"


async def test_unsigned_crate_is_refused(
    client: TestClient[Any, Any], small_registry: Registry
) -> None:
    """A crate published upstream without TUF metadata for its index file is not served."""
    resp = await client.get("/index/" + index_path("serde"))
    assert resp.status == 502
    assert "not listed in upstream's signed targets" in await resp.text()


async def test_cached_copy_is_revalidated_under_current_metadata(
    client: TestClient[Any, Any], signed: SignedUpstream, small_registry: Registry
) -> None:
    """After a legitimate, signed update upstream, the new bytes verify and are served."""
    assert (await client.get("/index/" + index_path("memchr"))).status == 200
    small_registry.add_crate("memchr", "9.0.0", {"src/lib.rs": b""})
    signed.update_index(index_path("memchr"), small_registry.read_index("memchr"))
    # On-demand metadata refreshes are rate-limited (2 s) so a flood of unknown names cannot
    # turn into a refresh per request.
    await asyncio.sleep(2.1)
    resp = await client.get("/index/" + index_path("memchr"))
    assert resp.status == 200
    assert b'"vers":"9.0.0"' in await resp.read()


@pytest.mark.parametrize(
    "attack",
    ["wrong timestamp key", "expired timestamp (freeze)", "endless timestamp", "mix-and-match"],
)
async def test_attacks_are_refused_and_nothing_is_cached(
    aiohttp_client: Any,
    aiohttp_server: Any,
    mirror_app: Callable[[Settings], web.Application],
    mirror_settings: Callable[..., Settings],
    small_upstream: FakeUpstream,
    signed: SignedUpstream,
    small_registry: Registry,
    tmp_path: Path,
    attack: str,
) -> None:
    """Each attack ends in a 502 with a reason, and the cache holds no index file after it."""
    if attack == "wrong timestamp key":
        signed.resign_timestamp_with_wrong_key()
    elif attack == "expired timestamp (freeze)":
        signed.expire_timestamp()
    elif attack == "endless timestamp":
        signed.inflate_timestamp(200_000)
    else:  # serve ryu's validly signed index file as itoa's
        itoa, ryu = small_registry.read_index("itoa"), small_registry.read_index("ryu")
        small_registry.write_index("itoa", ryu)
        small_registry.write_index("ryu", itoa)
    tuf = await _trusting(signed, aiohttp_server, tmp_path)
    settings = mirror_settings(small_upstream, tuf=tuf)
    client = await aiohttp_client(mirror_app(settings))
    for name in ("itoa", "ryu"):
        resp = await client.get("/index/" + index_path(name))
        assert resp.status == 502
        assert "crate-mirror:" in await resp.text()
        assert FilesystemStore(settings.cache_dir).read_index(name) is None
