"""The serving core without any HTTP: open it from Settings, ask for index files and crates,
close it; what it answers is what the handlers, prefetch and export render."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from mirror.audit import read_events
from mirror.epoch import bump_epoch
from mirror.errors import BadRequest, IntegrityError, NotFound
from mirror.request_ids import next_request_id
from mirror.serving import scans as scans_module
from mirror.serving.core import Client
from mirror.serving.open import open_mirror
from mirror.store import CachedIndex, FilesystemStore
from mirror.trust.bundle import IMPORT_EPOCH
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


@pytest.mark.parametrize(
    ("policy", "warmed"),
    [
        (None, False),  # decides nothing from contents: the scanner is never loaded
        ("capabilities:\n    mode: warn\n", True),
        ("risk:\n    mode: warn\n    corpus: popular.txt\n", True),
    ],
)
async def test_the_scanner_is_readied_before_serving_when_the_policy_scans(
    policy: str | None,
    warmed: bool,
    mirror_settings: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first scan loads the Rust reader and compiles the patterns (~0.3 s): a cold build's
    first crate that waits for a scan must not pay for it, nor the requests behind it."""
    calls: list[object] = []
    monkeypatch.setattr(scans_module, "warm_up", lambda: calls.append("warm"))
    overrides: dict[str, Any] = {}
    if policy is not None:
        (tmp_path / "popular.txt").write_text("serde\ntokio\n")
        path = tmp_path / "policy.yaml"
        path.write_text(f"version: 2\nrules:\n  {policy.replace(chr(10), chr(10) + '  ')}")
        overrides["policy"] = path
    core, close = open_mirror(mirror_settings(None, offline=True, **overrides))
    try:
        await core.start()
    finally:
        await close()
    assert calls == (["warm"] if warmed else [])


async def test_a_scan_is_judged_again_only_for_its_own_crate(
    small_upstream: FakeUpstream,
    small_registry: Registry,
    mirror_settings: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the shipped policy's rules (risk, and capabilities recording first sightings), a
    cold build scans the crates its reviewed lock lists while it runs. Each of those scans
    used to make every other crate's evidence be gathered and judged again on its next
    request; now only the scanned crate's is."""
    (tmp_path / "popular.txt").write_text("serde\nitoa\nryu\n")
    path = tmp_path / "policy.yaml"
    path.write_text(
        "version: 2\nrules:\n"
        "  risk:\n    mode: block\n    corpus: popular.txt\n"
        "  capabilities:\n    mode: warn\n    lock: lock.yaml\n    first_seen: trust\n"
    )
    gathered: list[str] = []
    core, close = open_mirror(mirror_settings(small_upstream, policy=path))
    view = core.evidence.view

    async def counted(entry: Any, *args: Any) -> Any:
        gathered.append(entry.name)
        return await view(entry, *args)

    monkeypatch.setattr(core.evidence, "view", counted)
    try:
        await core.start()
        first = {name: await core.serve_index(name, client()) for name in ("itoa", "ryu")}
        assert gathered == ["itoa", "ryu"]
        ryu = small_registry.versions("ryu")[0]
        core.evidence.scans.scan_bytes(small_registry.crate_bytes("ryu", ryu))
        again = await core.serve_index("itoa", client())
        assert gathered == ["itoa", "ryu"] and again.body == first["itoa"].body
        await core.serve_index("ryu", client())
        assert gathered == ["itoa", "ryu", "ryu"]  # its own scan: judged again
    finally:
        await close()


async def test_an_offline_mirror_serves_what_an_import_added_without_a_restart(
    mirror_settings: Any,
) -> None:
    """A running offline mirror kept hiding versions whose crates `import` had just added
    (its served view was memoized), and served an index file replaced by an import only
    after index_ttl: cargo failed with "candidate versions found which didn't match"."""
    settings = mirror_settings(None, offline=True)
    store = FilesystemStore(settings.cache_dir)
    crates = {v: f"tool {v}".encode() for v in ("1.0.0", "1.0.1", "1.0.2")}

    def line(version: str) -> bytes:
        cksum = hashlib.sha256(crates[version]).hexdigest()
        entry = {"name": "tool", "vers": version, "deps": [], "cksum": cksum, "features": {}}
        return json.dumps(entry).encode() + b"\n"

    def imported(versions: tuple[str, ...], listed: tuple[str, ...]) -> None:
        for v in versions:
            store.put_crate_bytes(hashlib.sha256(crates[v]).hexdigest(), crates[v])
        store.write_index("tool", CachedIndex(b"".join(map(line, listed)), None, None, 0.0))
        bump_epoch(settings.state_directory / IMPORT_EPOCH)  # what import_bundle does

    def served(body: bytes) -> list[str]:
        return [json.loads(x)["vers"] for x in body.splitlines()]

    imported(("1.0.0",), ("1.0.0", "1.0.1"))
    core, close = open_mirror(settings)
    try:
        await core.start()
        first = await core.serve_index("tool", client())
        assert served(first.body) == ["1.0.0"]  # 1.0.1's crate is not here
        assert first.reusable is not None and first.reusable()
        imported(("1.0.1",), ("1.0.0", "1.0.1"))  # same index bytes, one more crate
        assert not first.reusable()  # the front door stops repeating the old answer
        assert served((await core.serve_index("tool", client())).body) == ["1.0.0", "1.0.1"]
        imported(("1.0.2",), ("1.0.0", "1.0.1", "1.0.2"))  # a newer index file
        assert served((await core.serve_index("tool", client())).body) == [
            "1.0.0",
            "1.0.1",
            "1.0.2",
        ]
    finally:
        await close()
