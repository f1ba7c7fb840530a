"""After upstream faults stop, every crate is served correctly at the next request.

While upstream fails 30% of requests at random (5xx, 429, resets, truncated, bit-flipped and
wrong-length bodies, missing validators), some index files arrive with one flipped byte that
still parses: a version that reads wrong, or a wrong checksum. Such a copy used to be cached
and trusted for `index_ttl`, so downloads judged against it answered 404 or 502 long after
upstream was healthy again. Now a download that the cached index contradicts (the version is
missing, or the crate does not match its checksum) makes the mirror fetch that index file
again, once, before it answers.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from aiohttp.test_utils import TestClient

from tests.fixtures.faults import FaultKind
from tests.fixtures.pytest_plugin import MirrorClient
from tests.fixtures.registry import Registry
from tests.fixtures.upstream import FakeUpstream

FAULT_RATE = 0.3
FAULTS: tuple[FaultKind, ...] = (
    "error", "rate_limit", "reset", "truncate", "flip", "wrong_length", "missing_etag",
)  # fmt: skip
SEED = 16


async def _download(client: TestClient[Any, Any], name: str, version: str) -> tuple[int, bytes]:
    resp = await client.get(f"/api/v1/crates/{name}/{version}/download")
    return resp.status, await resp.read()


async def test_every_crate_is_served_at_the_first_request_after_faults_stop(
    debian_upstream: FakeUpstream, debian_registry: Registry, mirror_client: MirrorClient
) -> None:
    # An hour of TTL: recovery must not come from index files simply expiring.
    client = await mirror_client(debian_upstream, index_ttl=3600.0)
    crates = [(n, v) for n in debian_registry.names() for v in debian_registry.versions(n)]
    debian_upstream.faults.randomize(SEED, FAULT_RATE, kinds=FAULTS)
    during: Counter[int] = Counter()
    for name, version in crates:
        status, body = await _download(client, name, version)
        during[status] += 1
        if status == 200:  # faults or not, a 200 carries exactly the published crate
            assert body == debian_registry.crate_bytes(name, version), (name, version)
    assert sum(during.values()) == len(crates)
    index_flips = [
        r for r in debian_upstream.requests.all() if r.fault == "flip" and "/download" not in r.path
    ]
    assert index_flips, "no index file arrived corrupted: the run proves nothing"

    debian_upstream.faults.clear()
    wrong = []
    for name, version in crates:
        status, body = await _download(client, name, version)
        if status != 200 or body != debian_registry.crate_bytes(name, version):
            wrong.append((name, version, status, body[:120]))
    assert wrong == [], f"{len(wrong)} of {len(crates)} crates not served after faults stopped"
