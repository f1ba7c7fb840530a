"""Look-ahead: when cargo asks for an index file, its dependencies' files are fetched ahead."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import pytest

from mirror.audit import read_events
from mirror.index import IndexFile
from mirror.request_ids import next_request_id
from mirror.serving.core import Client
from mirror.serving.look_ahead import MAX_PER_FILE, dependency_names
from mirror.serving.open import open_mirror
from tests.fixtures.cargo_manifest import Dep
from tests.fixtures.registry import Registry
from tests.fixtures.upstream import FakeUpstream


def _line(name: str, vers: str, deps: Sequence[object]) -> bytes:  # any JSON upstream sends
    return json.dumps({"name": name, "vers": vers, "cksum": "0" * 64, "deps": deps}).encode()


def _dep(name: str, kind: str = "normal", **extra: Any) -> dict[str, Any]:
    return {"name": name, "req": "^1", "kind": kind, **extra}


def test_dependency_names_of_the_newest_versions() -> None:
    index = IndexFile.parse(
        b"\n".join(
            [
                _line("app", "1.0.0", [_dep("old-only")]),
                _line("app", "2.0.0", [_dep("serde"), _dep("criterion", "dev")]),
                _line(
                    "app",
                    "3.0.0",
                    [
                        _dep("cc", "build"),
                        _dep("json", package="serde_json"),  # renamed: the real crate counts
                        _dep("Serde"),  # the same crate again, spelled otherwise
                        _dep("../../etc/passwd"),  # upstream's bytes: not a crate name
                        _dep("app"),  # itself
                        {"kind": "normal"},
                        "not a dependency",
                    ],
                ),
                b'{"name":"app","vers":"4.0.0"',  # unparsed: never a version
            ]
        )
    )
    assert dependency_names(index, versions=2) == ["serde", "cc", "serde_json"]
    assert dependency_names(index, versions=3)[0] == "old-only"
    assert dependency_names(index, versions=0) == []


def test_at_most_max_per_file_names() -> None:
    deps = [_dep(f"dep{i}") for i in range(MAX_PER_FILE + 10)]
    assert len(dependency_names(IndexFile.parse(_line("app", "1.0.0", deps)), versions=1)) == (
        MAX_PER_FILE
    )


def client() -> Client:
    return Client(next_request_id(), "test")


def _index_requests(upstream: FakeUpstream, name: str) -> int:
    return sum(1 for r in upstream.requests.all() if r.path.rsplit("/", 1)[-1] == name)


async def _settle(upstream: FakeUpstream, names: list[str]) -> None:
    for _ in range(200):
        if all(_index_requests(upstream, n) for n in names):
            return
        await asyncio.sleep(0.02)


@pytest.fixture
def app_registry(small_registry: Registry) -> Registry:
    small_registry.add_crate(
        "app",
        "1.0.0",
        {"src/lib.rs": b""},
        deps=[Dep("itoa", "1"), Dep("ryu", "1", kind="build"), Dep("memchr", "2", kind="dev")],
    )
    return small_registry


async def test_cargo_finds_the_next_wave_fetched_and_nothing_is_decided_early(
    app_registry: Registry, mirror_settings: Any
) -> None:
    async with FakeUpstream(app_registry) as upstream:
        settings = mirror_settings(upstream)
        core, close = open_mirror(settings)
        try:
            await core.start()
            await core.serve_index("app", client())
            await _settle(upstream, ["itoa", "ryu"])
            assert _index_requests(upstream, "itoa") == 1
            assert _index_requests(upstream, "ryu") == 1
            assert _index_requests(upstream, "memchr") == 0  # dev-dependencies never resolve
            core.gate.audit.flush()
            audited = {e["crate"] for e in read_events(settings.audit_directory)}
            assert audited == {"app"}  # fetched ahead is not served: no decision yet
            for name in ("itoa", "ryu"):
                answer = await core.serve_index(name, client())  # from memory now
                assert answer.body == app_registry.read_index(name)
                assert _index_requests(upstream, name) == 1
        finally:
            await close()


@pytest.mark.parametrize("settings_override", [{"look_ahead_versions": 0}, {"offline": True}])
async def test_no_look_ahead_when_switched_off_or_offline(
    app_registry: Registry, mirror_settings: Any, settings_override: dict[str, Any]
) -> None:
    async with FakeUpstream(app_registry) as upstream:
        core, close = open_mirror(mirror_settings(upstream, **settings_override))
        try:
            assert core.look_ahead is None
        finally:
            await close()
