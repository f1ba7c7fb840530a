"""The CI soak: 600 cargo-like requests through a real mirror while upstream fails at random.

Same harness as `python -m bench.soak` (which runs longer, plus the 1,000-client load phase).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bench.soak import (
    DOWNLOAD_FAULTS,
    MIRROR_ENV,
    SoakFaults,
    check_cache,
    known_cksums,
    run_soak,
)
from tests.fixtures.registry import Registry
from tests.fixtures.upstream import FakeUpstream
from tests.mirror_process import MirrorProcess

pytestmark = pytest.mark.slow

SOAK_REQUESTS = 600
SEED = 7


def test_soak_with_random_upstream_faults(fixture_registry: Registry, tmp_path: Path) -> None:
    """No 200 carries wrong bytes, every failure explains itself, the cache holds only verified
    crates, and every fault kind was actually injected (so the run proves something)."""
    registry = fixture_registry.copy_to(tmp_path / "registry")
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
