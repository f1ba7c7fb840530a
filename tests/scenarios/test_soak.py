"""The CI soak: 600 cargo-like requests through a real mirror while upstream fails at random.

Same harness as `python -m bench.soak` (which runs longer, plus the 1,000-client load phase).
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bench.soak import (
    DOWNLOAD_FAULTS,
    MIRROR_ENV,
    SoakFaults,
    check_cache,
    known_cksums,
    run_soak,
)
from mirror.app import create_app
from mirror.config import Settings
from mirror.index import index_path
from mirror.store import FilesystemStore
from tests.fixtures.registry import Registry
from tests.fixtures.tuf_repo import SignedUpstream
from tests.fixtures.upstream import FakeUpstream
from tests.mirror_process import MirrorProcess

pytestmark = pytest.mark.slow

SOAK_REQUESTS = 600
SEED = 7


def test_soak_with_random_upstream_faults(
    debian_registry_template: Registry, tmp_path: Path
) -> None:
    """No 200 carries wrong bytes, every failure explains itself, the cache holds only verified
    crates, and every fault kind was actually injected (so the run proves something)."""
    registry = debian_registry_template.copy_to(tmp_path / "registry")
    cache = tmp_path / "cache"
    with FakeUpstream(registry).in_thread() as upstream:
        faults = SoakFaults(SEED, rate=0.2)
        faults.each_kind_once()
        upstream.faults = faults
        mirror = MirrorProcess(cache, upstream=upstream.url + "/", env=MIRROR_ENV).start()
        try:
            result = asyncio.run(
                run_soak(mirror.url, registry, requests=SOAK_REQUESTS, concurrency=16, seed=SEED)
            )
        finally:
            mirror.stop()
    print(f"\nsoak: {result.summary()}\nsoak: faults {dict(faults.injected)}")
    assert result.total == SOAK_REQUESTS
    assert result.wrong_body == 0, result.examples
    assert result.failed_unclear == 0, result.examples
    assert result.served + result.failed_clear == SOAK_REQUESTS
    assert set(faults.injected) == set(DOWNLOAD_FAULTS), faults.injected
    assert result.retried > 0  # faults did reach clients as clear 5xx and were retried
    assert any(status >= 500 for status in result.statuses)
    cached = list((cache / "crates").rglob("*.crate"))
    assert len(cached) > 50
    assert check_cache(cache, known_cksums(registry)) == []
    assert list((cache / "tmp").glob("*")) == []  # no leftovers from failed downloads


def test_check_cache_notices_a_corrupt_or_foreign_file(
    small_registry: Registry, tmp_path: Path
) -> None:
    """The soak's final check is not vacuous: it flags each kind of bad store entry."""
    cksums = known_cksums(small_registry)
    good = sorted(cksums)[0]
    store = tmp_path / "crates"
    (store / good[:2]).mkdir(parents=True)
    (store / good[:2] / f"{good}.crate").write_bytes(b"not the crate")
    (store / "ab").mkdir()
    (store / "ab" / "half.part").write_bytes(b"x")
    problems = check_cache(tmp_path, cksums)
    assert len(problems) == 2
    assert any("hashes to" in p for p in problems)
    assert any("unexpected file" in p for p in problems)


# -- TUF: index and metadata faults are caught when the upstream is signed --------------------

TUF_REQUESTS = 300


class FaultyCdn:
    """Serve a directory like a CDN that, once `active`, sometimes answers 503 or flips one
    byte of an index file (seeded, in arrival order), and flips the first TUF timestamp it
    serves: a metadata fault in every run, not only when the dice say so."""

    def __init__(self, directory: Path, seed: int, rate: float) -> None:
        self.root = directory.resolve()
        self.rng = random.Random(seed)
        self.rate = rate
        self.active = False
        self.counts: Counter[str] = Counter()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/{tail:.+}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = (self.root / request.match_info["tail"]).resolve()
        if not path.is_relative_to(self.root) or not path.is_file():
            return web.Response(status=404)
        body = path.read_bytes()
        if not self.active:
            return web.Response(body=body)
        if path.name == "timestamp.json" and not self.counts["flip metadata"]:
            self.counts["flip metadata"] += 1
            return web.Response(body=_flip(body, len(body) // 2))
        if path.is_relative_to(self.root / "metadata"):
            return web.Response(body=body)
        roll = self.rng.random()
        if roll < self.rate / 3:
            self.counts["503 index"] += 1
            return web.Response(status=503)
        if roll < self.rate:
            self.counts["flip index"] += 1
            return web.Response(body=_flip(body, self.rng.randrange(len(body))))
        return web.Response(body=body)


def _flip(body: bytes, at: int) -> bytes:
    return body[:at] + bytes([body[at] ^ 0x01]) + body[at + 1 :]


async def test_tuf_soak_catches_index_and_metadata_faults(
    small_registry: Registry,
    tmp_path: Path,
    aiohttp_server: Callable[[web.Application], Awaitable[Any]],
    aiohttp_client: Callable[[web.Application], Awaitable[Any]],
    mirror_settings: Callable[..., Settings],
) -> None:
    """With TUF configured, a flipped index byte (undetectable otherwise) or a flipped metadata
    byte is refused with a clear error; no 200 ever carries bytes upstream did not sign."""
    names = small_registry.names()
    expected = {n: small_registry.read_index(n) for n in names}
    signed = SignedUpstream(tmp_path / "signed", {index_path(n): expected[n] for n in names})
    (signed.dir / "index" / "config.json").write_text(json.dumps({"dl": "http://127.0.0.1:9/"}))
    pinned = tmp_path / "pinned-root.json"
    pinned.write_bytes(signed.root_versions[1])
    cdn = FaultyCdn(signed.dir, SEED, rate=0.15)
    server = await aiohttp_server(cdn.app())
    base = str(server.make_url("/"))
    settings = mirror_settings(
        None,
        upstream_index=base + "index/",
        index_ttl=0,
        tuf={
            "upstream": {
                "metadata_url": base + "metadata/",
                "trusted_root": str(pinned),
                "metadata_dir": str(tmp_path / "tuf-client"),
                "refresh_interval": 1,
            }
        },
    )
    client = await aiohttp_client(create_app(settings))
    rng = random.Random(SEED)
    plan = [rng.choice(names) for _ in range(TUF_REQUESTS)]
    statuses: Counter[int] = Counter()
    wrong: list[str] = []
    unclear: list[str] = []
    reasons: Counter[bytes] = Counter()
    gate = asyncio.Semaphore(8)

    async def fetch(name: str) -> None:
        async with gate:
            resp = await client.get("/index/" + index_path(name))
            body = await resp.read()
        statuses[resp.status] += 1
        if resp.status == 200 and body != expected[name]:
            wrong.append(name)
        elif resp.status != 200:
            reasons[body[:120]] += 1
        if resp.status != 200 and not body.startswith(b"crate-mirror:"):
            unclear.append(f"{name}: {resp.status} {body[:100]!r}")

    await asyncio.gather(*(fetch(n) for n in names))  # warm: metadata trusted, all cached
    assert statuses == Counter({200: len(names)})
    statuses.clear()
    cdn.active = True
    tasks = []
    for name in plan:  # ~6 s: several metadata refreshes (every 1 s) happen during the run
        tasks.append(asyncio.create_task(fetch(name)))
        await asyncio.sleep(0.02)
    await asyncio.gather(*tasks)
    counts = cdn.counts
    print(f"\ntuf soak: statuses {dict(statuses)}, faults {dict(counts)}")
    print("\n".join(f"  {n} x {r.decode(errors='replace')}" for r, n in reasons.most_common(4)))
    assert wrong == []
    assert unclear == []
    assert counts["flip index"] > 0 and counts["flip metadata"] > 0
    assert statuses[502] > 0  # flipped bodies were refused as TUF failures ...
    assert statuses[200] > TUF_REQUESTS // 4  # ... and the rest was served
    store = FilesystemStore(settings.cache_dir)
    for name in names:
        cached = store.read_index(name)
        assert cached is None or cached.body == expected[name], name
