"""The serving core without any HTTP: open it from Settings, ask for index files and crates,
close it; what it answers is what the handlers, prefetch and export render."""

from __future__ import annotations

from typing import Any

import pytest

from mirror.audit import read_events
from mirror.errors import BadRequest, IntegrityError, NotFound
from mirror.request_ids import next_request_id
from mirror.serving.core import Client
from mirror.serving.open import open_mirror
from tests.fixtures.registry import Registry
from tests.fixtures.upstream import FakeUpstream


def client() -> Client:
    return Client(next_request_id(), "test")


async def test_index_and_crate_through_the_core(
    small_upstream: FakeUpstream, small_registry: Registry, mirror_settings: Any
) -> None:
    settings = mirror_settings(small_upstream)
    core, close = open_mirror(settings)
    try:
        await core.start()
        index = await core.serve_index("itoa", client())
        assert index.body == small_registry.read_index("itoa") and not index.stale
        assert index.reusable is not None and index.reusable()  # a plain allow: repeatable
        version = small_registry.versions("itoa")[0]
        first = await core.fetch_crate("itoa", version, client(), route="prefetch")
        assert not first.crate.was_cached
        assert first.crate.read() == small_registry.crate_bytes("itoa", version)
        assert first.served_index.body == index.body
        again = await core.fetch_crate("itoa", version, client())
        assert again.crate.was_cached and again.reusable is not None
        assert small_upstream.requests.count("download") == 1
        with pytest.raises(NotFound, match=r"itoa@99\.0\.0 is not in the upstream index"):
            await core.fetch_crate("itoa", "99.0.0", client())
        with pytest.raises(BadRequest):
            await core.fetch_crate("../../etc", version, client())  # the core validates too
    finally:
        await close()
    routes = [
        (e["action"], e["route"], e.get("version")) for e in read_events(settings.audit_directory)
    ]
    assert ("allow", "prefetch", version) in routes and ("allow", "download", version) in routes


async def test_only_verification_failures_are_audited_as_blocks(
    mirror_settings: Any,
) -> None:
    settings = mirror_settings(None, offline=True)
    core, close = open_mirror(settings)
    try:
        core.record_failure(client(), "download", "itoa", "1.0.0", IntegrityError("mismatch"))
        core.record_failure(client(), "download", "itoa", "1.0.0", NotFound("no such crate"))
    finally:
        await close()
    events = list(read_events(settings.audit_directory))
    assert [(e["action"], e["rule"], e["reason"]) for e in events] == [
        ("block", "checksum", "mismatch")
    ]
