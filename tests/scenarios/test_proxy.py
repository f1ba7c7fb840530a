"""The caching proxy's request path against the fake upstream (no policy)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from mirror.config import Settings
from mirror.http.routes import HANDLERS
from mirror.index import index_path
from mirror.store import FilesystemStore
from tests.fixtures.faults import FaultKind
from tests.fixtures.pytest_plugin import MirrorClient
from tests.fixtures.registry import Registry
from tests.fixtures.upstream import FakeUpstream

AiohttpClient = Callable[[web.Application], Any]


@pytest.fixture
async def client(mirror_client: MirrorClient, small_upstream: FakeUpstream) -> TestClient[Any, Any]:
    return await mirror_client(small_upstream)


def _dl(client: TestClient[Any, Any], name: str, version: str) -> str:
    return f"/api/v1/crates/{name}/{version}/download"


async def test_index_is_relayed_byte_for_byte(
    client: TestClient[Any, Any], small_registry: Registry
) -> None:
    """Index lines are never re-serialized: unknown fields like rust_version survive."""
    resp = await client.get("/index/" + index_path("serde"))
    assert resp.status == 200
    assert await resp.read() == small_registry.read_index("serde")


async def test_config_rewrites_dl_and_drops_api(client: TestClient[Any, Any]) -> None:
    """cargo must download through the mirror and never be sent to upstream's API."""
    resp = await client.get("/index/config.json")
    config = json.loads(await resp.read())
    assert config["dl"].endswith("/api/v1/crates")
    assert "api" not in config


async def test_etag_and_304_to_cargo(client: TestClient[Any, Any]) -> None:
    """cargo revalidates with If-None-Match; an unchanged file costs a 304."""
    first = await client.get("/index/" + index_path("itoa"))
    etag = first.headers["ETag"]
    again = await client.get("/index/" + index_path("itoa"), headers={"If-None-Match": etag})
    assert again.status == 304
    assert again.headers["ETag"] == etag


async def test_revalidates_upstream_with_conditional_request(
    mirror_client: MirrorClient,
    small_upstream: FakeUpstream,
) -> None:
    """After the TTL the mirror asks upstream with its validators and accepts a 304."""
    client = await mirror_client(small_upstream, index_ttl=0)
    path = "/index/" + index_path("ryu")
    assert (await client.get(path)).status == 200
    small_upstream.requests.clear()
    resp = await client.get(path)
    assert resp.status == 200
    assert small_upstream.requests.count("ryu", status=304) == 1


async def test_upstream_change_is_picked_up_after_ttl(
    mirror_client: MirrorClient,
    small_upstream: FakeUpstream,
    small_registry: Registry,
) -> None:
    client = await mirror_client(small_upstream, index_ttl=0)
    path = "/index/" + index_path("itoa")
    await client.get(path)
    small_registry.add_crate("itoa", "9.9.9", {"src/lib.rs": b"pub fn x() {}\n"})
    body = await (await client.get(path)).read()
    assert b'"vers":"9.9.9"' in body


async def test_stale_copy_served_when_upstream_fails(
    mirror_client: MirrorClient,
    small_upstream: FakeUpstream,
    small_registry: Registry,
) -> None:
    """stale-if-error: an upstream outage must not break builds that were working."""
    client = await mirror_client(small_upstream, index_ttl=0)
    path = "/index/" + index_path("memchr")
    await client.get(path)
    small_upstream.faults.add("error", match="memchr", status=503, times=10)
    resp = await client.get(path)
    assert resp.status == 200
    assert "Stale" in resp.headers["Warning"]
    assert await resp.read() == small_registry.read_index("memchr")


async def test_nothing_cached_and_upstream_down_is_503_with_reason(
    client: TestClient[Any, Any], small_upstream: FakeUpstream
) -> None:
    small_upstream.faults.add("error", match="itoa", status=500, times=10)
    resp = await client.get("/index/" + index_path("itoa"))
    assert resp.status == 503
    assert "upstream" in await resp.text()


async def test_upstream_404_is_404_and_negative_cached(
    client: TestClient[Any, Any], small_upstream: FakeUpstream
) -> None:
    for _ in range(3):
        resp = await client.get("/index/" + index_path("no-such-crate"))
        assert resp.status == 404
    assert small_upstream.requests.count("no-such-crate") == 1


@pytest.mark.parametrize(
    "path",
    [
        "/index/../../etc/passwd",
        "/index/se/rd/../../../etc/passwd",
        "/index/se/rd/%2e%2e",
        "/index/se/rd/serde/extra",
        "/index/xx/yy/serde",
        "/index/3/s/serde",
        "/index/se/rd/Serde",
        "/index/se/rd/s%C3%A9rde",
        "/index/" + index_path("a" * 65),
        "/index/1/_",
        "/index/2/-a",
    ],
)
async def test_bad_index_paths_are_rejected(
    client: TestClient[Any, Any], small_upstream: FakeUpstream, path: str
) -> None:
    """Path traversal and malformed names never reach the disk or the upstream."""
    resp = await client.get(path)
    assert resp.status in (400, 404)
    assert small_upstream.requests.count() == 0 or all(
        "config.json" in r.path for r in small_upstream.requests.all()
    )


async def test_download_is_verified_cached_and_served_from_cache(
    client: TestClient[Any, Any], small_upstream: FakeUpstream, small_registry: Registry
) -> None:
    version = small_registry.versions("itoa")[0]
    expected = small_registry.crate_bytes("itoa", version)
    resp = await client.get(_dl(client, "itoa", version))
    assert resp.status == 200
    assert await resp.read() == expected
    small_upstream.requests.clear()
    resp = await client.get(_dl(client, "itoa", version))
    assert await resp.read() == expected
    assert small_upstream.requests.count("download") == 0


async def test_unknown_version_is_404(client: TestClient[Any, Any]) -> None:
    resp = await client.get(_dl(client, "itoa", "99.0.0"))
    assert resp.status == 404
    assert "itoa@99.0.0 is not in the upstream index" in await resp.text()  # as prefetch says


@pytest.mark.parametrize("fault", ["flip", "truncate", "wrong_length"])
async def test_corrupt_download_is_502_and_never_cached(
    client: TestClient[Any, Any],
    small_upstream: FakeUpstream,
    small_registry: Registry,
    mirror_settings: Callable[..., Settings],
    fault: FaultKind,
) -> None:
    """A flipped byte, a short body or a lying Content-Length is refused and leaves nothing."""
    version = small_registry.versions("serde")[0]
    small_upstream.faults.add(fault, match="/serde/", times=10)
    resp = await client.get(_dl(client, "serde", version))
    assert resp.status == 502
    core = client.app[HANDLERS].core
    await core.writes.flush()  # the index file and crate are written after the answer
    cache = mirror_settings(small_upstream).cache_dir
    assert list(FilesystemStore(cache).iter_crates()) == []
    assert list((cache / "tmp").iterdir()) == []


async def test_concurrent_requests_make_one_upstream_fetch(
    client: TestClient[Any, Any], small_upstream: FakeUpstream, small_registry: Registry
) -> None:
    version = small_registry.versions("serde")[0]
    small_upstream.faults.add("delay", match="/serde/", seconds=0.3, times=100)
    await client.get("/index/" + index_path("serde"))
    responses = await asyncio.gather(
        *(client.get(_dl(client, "serde", version)) for _ in range(50))
    )
    bodies = {hashlib.sha256(await r.read()).hexdigest() for r in responses}
    assert [r.status for r in responses] == [200] * 50
    assert len(bodies) == 1
    assert small_upstream.requests.count("download") == 1


async def test_offline_serves_only_cached_versions(
    mirror_client: MirrorClient,
    small_upstream: FakeUpstream,
    small_registry: Registry,
) -> None:
    """Offline, cargo may only resolve to versions whose .crate we actually hold."""
    small_registry.add_crate("itoa", "9.9.9", {"src/lib.rs": b""})
    online = await mirror_client(small_upstream)
    await online.get("/index/" + index_path("itoa"))
    kept = small_registry.versions("itoa")[0]
    assert (await online.get(_dl(online, "itoa", kept))).status == 200
    await online.close()

    offline = await mirror_client(None, offline=True)
    body = await (await offline.get("/index/" + index_path("itoa"))).read()
    versions = [json.loads(line)["vers"] for line in body.splitlines()]
    assert versions == [kept]
    missing = await offline.get(_dl(offline, "itoa", "9.9.9"))
    assert missing.status == 404
    assert "offline" in await missing.text()
    unknown = await offline.get("/index/" + index_path("serde"))
    assert unknown.status == 404
    assert "import" in await unknown.text()


async def test_dl_template_markers_are_honoured(
    mirror_client: MirrorClient,
    small_registry: Registry,
) -> None:
    template = "/dl/{lowerprefix}/{crate}/{version}/{sha256-checksum}.crate"
    async with FakeUpstream(small_registry, dl_template=template) as upstream:
        client = await mirror_client(upstream)
        version = small_registry.versions("itoa")[0]
        resp = await client.get(_dl(client, "itoa", version))
        assert resp.status == 200
        assert upstream.requests.count("/dl/it/oa/itoa/") == 1


async def test_healthz_and_metrics(client: TestClient[Any, Any]) -> None:
    assert (await client.get("/healthz")).status == 200
    await client.get("/index/" + index_path("itoa"))
    text = await (await client.get("/metrics")).text()
    assert "crate_mirror_requests_total" in text
    assert "crate_mirror_cache_total" in text


@pytest.mark.parametrize("kind", ["error", "rate_limit", "reset"])
async def test_transient_upstream_failures_are_retried(
    client: TestClient[Any, Any], small_upstream: FakeUpstream, small_registry: Registry, kind: str
) -> None:
    """5xx, 429 (Retry-After) and resets on idempotent GETs are retried with backoff."""
    small_upstream.faults.add(kind, match="ryu", times=1, retry_after=0)  # type: ignore[arg-type]
    resp = await client.get("/index/" + index_path("ryu"))
    assert resp.status == 200
    assert await resp.read() == small_registry.read_index("ryu")


async def test_oversized_crate_is_refused_and_not_cached(
    mirror_client: MirrorClient,
    mirror_settings: Callable[..., Settings],
    small_upstream: FakeUpstream,
    small_registry: Registry,
) -> None:
    """An endless or huge body costs at most max_crate_bytes and is never cached."""
    client = await mirror_client(small_upstream, max_crate_bytes=1000)
    version = small_registry.versions("serde")[0]
    resp = await client.get(_dl(client, "serde", version))
    assert resp.status == 502
    assert "limit" in await resp.text()
    assert list(FilesystemStore(mirror_settings(None).cache_dir).iter_crates()) == []


async def test_upstream_requests_identify_the_mirror(
    mirror_client: MirrorClient, aiohttp_server: Any
) -> None:
    """A polite client says who it is, so registry operators can reach us."""
    agents: list[str] = []

    async def record(request: web.Request) -> web.Response:
        agents.append(request.headers.get("User-Agent", ""))
        return web.Response(status=404)

    upstream_app = web.Application()
    upstream_app.router.add_get("/{tail:.*}", record)
    server = await aiohttp_server(upstream_app)
    client = await mirror_client(None, upstream_index=str(server.make_url("/")))
    assert (await client.get("/index/" + index_path("itoa"))).status == 404
    assert agents and all(a.startswith("crate-mirror/") for a in agents)


async def test_index_memory_is_bounded_and_evicted_entries_come_from_disk(
    mirror_client: MirrorClient,
    small_upstream: FakeUpstream,
    small_registry: Registry,
) -> None:
    """A scan over many names cannot grow memory without bound; eviction costs a disk read."""
    client = await mirror_client(small_upstream, index_memory_bytes=1)
    names = ["itoa", "ryu", "memchr", "serde"]
    for name in names:
        assert (await client.get("/index/" + index_path(name))).status == 200
    small_upstream.requests.clear()
    for name in names:
        resp = await client.get("/index/" + index_path(name))
        assert await resp.read() == small_registry.read_index(name)
    assert small_upstream.requests.count() == 0  # evicted from memory, served from disk


async def test_download_works_when_upstream_config_was_unreachable_at_start(
    client: TestClient[Any, Any], small_upstream: FakeUpstream, small_registry: Registry
) -> None:
    """Upstream down while the mirror started: the first download learns `dl` itself."""
    core = client.app[HANDLERS].core
    assert core.upstream is not None
    core.upstream._dl_template = None  # config.json failed at start
    core.config._body = None
    version = small_registry.versions("ryu")[0]
    resp = await client.get(_dl(client, "ryu", version))
    assert resp.status == 200
    assert await resp.read() == small_registry.crate_bytes("ryu", version)
