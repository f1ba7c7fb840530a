"""Replicas sharing a bucket, through the HTTP API: what one fetched, another serves without
upstream; with the bucket unreachable or sending wrong bytes, a replica serves what it holds
locally or answers 503 with the reason, and never a wrong byte."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from mirror.index import index_path
from mirror.store.s3 import crate_key
from tests.fixtures.object_store import StoreProxy, TestBucket
from tests.fixtures.pytest_plugin import MirrorClient
from tests.fixtures.registry import Registry
from tests.fixtures.upstream import FakeUpstream

NAMES = ("itoa", "ryu", "memchr")


def _dl(name: str, version: str) -> str:
    return f"/api/v1/crates/{name}/{version}/download"


async def _replica(
    mirror_client: MirrorClient,
    upstream: FakeUpstream,
    bucket: TestBucket,
    cache: Path,
    replica: str,
    endpoint: str | None = None,
) -> TestClient[Any, Any]:
    return await mirror_client(
        upstream, cache_dir=cache, replica_id=replica, **bucket.settings(endpoint)
    )


async def _fetch_all(client: TestClient[Any, Any], registry: Registry) -> None:
    for name in NAMES:
        resp = await client.get("/index/" + index_path(name))
        assert resp.status == 200, await resp.text()
        version = registry.versions(name)[-1]
        resp = await client.get(_dl(name, version))
        assert resp.status == 200, await resp.text()
        assert await resp.read() == registry.crate_bytes(name, version)


async def test_what_one_replica_fetched_another_serves_without_upstream(
    mirror_client: MirrorClient, small_registry: Registry, s3_bucket: TestBucket, tmp_path: Path
) -> None:
    with FakeUpstream(small_registry).in_thread() as upstream:
        a = await _replica(mirror_client, upstream, s3_bucket, tmp_path / "a", "a")
        await _fetch_all(a, small_registry)
        await a.close()  # waits for its uploads
        downloads = upstream.requests.count("download")
    assert downloads == len(NAMES)
    keys = s3_bucket.objects()
    for name in NAMES:
        cksum = small_registry.entries(name)[-1]["cksum"]
        assert crate_key(cksum) in keys and "index/" + index_path(name) in keys
    # Upstream is gone; B has an empty cache and the same bucket.
    b = await _replica(mirror_client, upstream, s3_bucket, tmp_path / "b", "b")
    await _fetch_all(b, small_registry)
    config = await b.get("/index/config.json")
    assert config.status == 200  # learnt from the bucket: upstream's is unreachable
    await b.close()
    assert (tmp_path / "a" / "audit" / "a").is_dir() and (tmp_path / "b" / "audit" / "b").is_dir()


async def test_bucket_down_serves_local_copies_or_503_with_a_reason(
    mirror_client: MirrorClient,
    small_registry: Registry,
    s3_bucket: TestBucket,
    store_proxy: StoreProxy,
    tmp_path: Path,
) -> None:
    with FakeUpstream(small_registry).in_thread() as upstream:
        a = await _replica(mirror_client, upstream, s3_bucket, tmp_path / "a", "a")
        await _fetch_all(a, small_registry)
        await a.close()
        b = await _replica(mirror_client, upstream, s3_bucket, tmp_path / "b", "b", store_proxy.url)
        resp = await b.get(_dl("itoa", small_registry.versions("itoa")[-1]))
        assert resp.status == 200  # now local on B too
    # Upstream gone, bucket unreachable (every connection reset).
    store_proxy.faults.add("reset")
    version = small_registry.versions("itoa")[-1]
    resp = await b.get(_dl("itoa", version))
    assert resp.status == 200
    assert await resp.read() == small_registry.crate_bytes("itoa", version)
    resp = await b.get(_dl("ryu", small_registry.versions("ryu")[-1]))
    body = await resp.text()
    assert resp.status == 503, body
    assert "the shared store failed" in body and "object store" in body and "upstream" in body
    assert store_proxy.requests.count(status=0) >= 2  # it really tried the bucket
    await b.close()


@pytest.mark.parametrize("upstream_up", [True, False])
async def test_wrong_bytes_from_the_bucket_are_never_served(
    upstream_up: bool,
    mirror_client: MirrorClient,
    small_registry: Registry,
    s3_bucket: TestBucket,
    store_proxy: StoreProxy,
    tmp_path: Path,
) -> None:
    """A byte flipped between bucket and replica: the upstream copy is served instead, or
    the request fails; the flipped copy is neither served nor kept."""
    name, version = "memchr", small_registry.versions("memchr")[-1]
    good = small_registry.crate_bytes(name, version)
    with FakeUpstream(small_registry).in_thread() as upstream:
        a = await _replica(mirror_client, upstream, s3_bucket, tmp_path / "a", "a")
        await _fetch_all(a, small_registry)
        await a.close()
        b = await _replica(mirror_client, upstream, s3_bucket, tmp_path / "b", "b", store_proxy.url)
        assert (await b.get("/index/" + index_path(name))).status == 200
        store_proxy.faults.add("flip", match="/crates/")
        if upstream_up:
            resp = await b.get(_dl(name, version))
            assert resp.status == 200 and await resp.read() == good
            assert upstream.requests.count("download") == len(NAMES) + 1  # went upstream
    if not upstream_up:
        resp = await b.get(_dl(name, version))
        body = await resp.read()
        assert resp.status in (502, 503) and good not in body and b"damaged" in body
        assert not any((tmp_path / "b" / "crates").rglob("*.crate"))
    assert any(r.fault == "flip" for r in store_proxy.requests.all())
    await b.close()


async def test_a_stalled_bucket_times_out_and_upstream_answers(
    mirror_client: MirrorClient,
    small_registry: Registry,
    s3_bucket: TestBucket,
    store_proxy: StoreProxy,
    tmp_path: Path,
) -> None:
    """A bucket that accepts connections and never answers costs a read timeout, not a hung
    build: the index file and the crate come from upstream, verified."""
    name, version = "ryu", small_registry.versions("ryu")[-1]
    with FakeUpstream(small_registry).in_thread() as upstream:
        a = await _replica(mirror_client, upstream, s3_bucket, tmp_path / "a", "a")
        await _fetch_all(a, small_registry)
        await a.close()
        store_proxy.faults.add("stall", seconds=30)
        b = await mirror_client(
            upstream,
            cache_dir=tmp_path / "b",
            replica_id="b",
            **s3_bucket.settings(store_proxy.url, s3_read_timeout=1.0, s3_retries=0),
        )
        started = time.monotonic()
        assert (await b.get("/index/" + index_path(name))).status == 200
        resp = await b.get(_dl(name, version))
        assert resp.status == 200 and await resp.read() == small_registry.crate_bytes(name, version)
        assert time.monotonic() - started < 15
        assert any(r.fault == "stall" for r in store_proxy.requests.all())
        await b.close()
