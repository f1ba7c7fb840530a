"""Look-ahead: when cargo asks for an index file, its dependencies' files are fetched ahead,
and, from a distant upstream, the versions of the crate cargo will download."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import pytest

from mirror import metrics
from mirror.audit import read_events
from mirror.errors import IntegrityError
from mirror.index import IndexFile, IndexLine
from mirror.request_ids import next_request_id
from mirror.serving.core import Client
from mirror.serving.downloads import CrateFile
from mirror.serving.index_cache import IndexEntry
from mirror.serving.look_ahead import (
    MAX_PER_FILE,
    WORTH_IT_AFTER,
    LookAhead,
    dependency_names,
    newest_release,
    requirements,
    versions_to_fetch,
)
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


# -- crates ---------------------------------------------------------------------------------


def _versions(name: str, *versions: str, yanked: Sequence[str] = ()) -> IndexFile:
    return IndexFile.parse(
        b"\n".join(
            json.dumps(
                {"name": name, "vers": v, "cksum": f"{i:064x}", "deps": [], "yanked": v in yanked}
            ).encode()
            for i, v in enumerate(versions, start=1)
        )
    )


def _vers(lines: Sequence[IndexLine]) -> list[str]:
    return [line.vers for line in lines]


def test_requirements_of_a_version_are_its_normal_and_build_dependencies() -> None:
    line = IndexFile.parse(
        _line(
            "app",
            "1.0.0",
            [
                _dep("serde"),
                _dep("cc", "build", req=">=1.0.50"),
                _dep("json", package="Serde_Json", req="1.0.100"),  # the real crate, lower case
                _dep("criterion", "dev"),  # dependents never build it
                {"name": "no-req"},
                "not a dependency",
            ],
        )
    ).lines[0]
    assert requirements(line) == [("serde", "^1"), ("cc", ">=1.0.50"), ("serde_json", "1.0.100")]


def test_the_newest_release_is_neither_yanked_nor_a_prerelease_nor_held_back() -> None:
    index = _versions("syn", "1.0.9", "1.0.10", "2.0.0", "2.0.1", "3.0.0-rc.1", yanked=["2.0.1"])
    assert _vers(_versions_newest(index)) == ["2.0.0"]
    held = newest_release(index, {"2.0.0": "held"})
    assert held is not None and held.vers == "1.0.10"
    assert newest_release(_versions("x", "0.1.0-alpha"), ()) is None


def test_each_requirement_seen_gets_the_newest_version_it_allows() -> None:
    index = _versions("syn", "1.0.9", "1.0.10", "2.0.0", "2.0.1", "3.0.0-rc.1", yanked=["2.0.1"])
    assert _vers(versions_to_fetch(index, (), [])) == ["2.0.0"]  # nothing seen: the newest
    assert _vers(versions_to_fetch(index, (), ["1", "^2.0"])) == ["1.0.10", "2.0.0"]
    assert _vers(versions_to_fetch(index, (), ["=1.0.9", "1.0"])) == ["1.0.9", "1.0.10"]
    assert _vers(versions_to_fetch(index, (), ["3.0.0-rc.1"])) == ["3.0.0-rc.1"]  # opted in
    assert _vers(versions_to_fetch(index, {"1.0.10": "held"}, ["1"])) == ["1.0.9"]
    assert versions_to_fetch(index, (), ["4"]) == []  # cargo will not find one either: no guess
    assert versions_to_fetch(index, (), ["not a requirement"]) == _versions_newest(index)


def _versions_newest(index: IndexFile) -> list[IndexLine]:
    newest = newest_release(index, ())
    return [newest] if newest is not None else []


class _Indexes:
    """The index cache as the look-ahead sees it: every index file already known."""

    def known(self, name: str) -> bool:
        return True

    async def get(self, name: str) -> IndexEntry:
        raise AssertionError(f"{name}: nothing is fetched from a cache that knows everything")


def _entry(index: IndexFile) -> IndexEntry:
    return IndexEntry(index.lines[0].name, index, None, None, fresh_until=0.0)


async def _crates_fetched_ahead(
    round_trip: float | None, entries: Sequence[tuple[IndexFile, Collection[str]]]
) -> list[str]:
    """Ask for each index file in turn (with its held-back versions); the crates fetched."""
    fetched: list[str] = []

    async def fetch(line: IndexLine) -> CrateFile:
        fetched.append(f"{line.name}@{line.vers}")
        return CrateFile(Path("/nowhere"), b"", was_cached=False)

    look = LookAhead(_Indexes(), versions=3, crates=fetch, round_trip=lambda: round_trip)
    try:
        for index, hidden in entries:
            look.after(_entry(index), hidden)
            await asyncio.sleep(0)
        for _ in range(10):
            await asyncio.sleep(0)
    finally:
        await look.stop()
    return sorted(fetched)


def _app_and_syn() -> list[tuple[IndexFile, Collection[str]]]:
    app = IndexFile.parse(
        b"\n".join(
            [
                _line("app", "1.0.0", [_dep("syn", req="2")]),  # an older release: not followed
                _line("app", "1.1.0", [_dep("syn", req="1"), _dep("quote", req="1")]),
            ]
        )
    )
    syn = _versions("syn", "1.0.9", "1.0.10", "2.0.0")
    return [(app, ()), (syn, ())]


async def test_from_a_distant_upstream_the_versions_cargo_will_download_are_fetched() -> None:
    fetched = await _crates_fetched_ahead(WORTH_IT_AFTER * 2, _app_and_syn())
    # app: nothing required it, so its newest release; syn: what app's newest release needs.
    assert fetched == ["app@1.1.0", "syn@1.0.10"]


@pytest.mark.parametrize("round_trip", [None, WORTH_IT_AFTER / 2])
async def test_from_a_near_or_unmeasured_upstream_no_crate_is_fetched_ahead(
    round_trip: float | None,
) -> None:
    """A loopback upstream answers in well under a millisecond: fetching crates ahead then
    cost cargo more CPU than the round trips it saved (docs/benchmarks.md)."""
    assert await _crates_fetched_ahead(round_trip, _app_and_syn()) == []


def test_what_the_status_page_says_about_crates_ahead() -> None:
    async def fetch(line: IndexLine) -> CrateFile:
        raise AssertionError("nothing is fetched here")

    look = LookAhead(_Indexes(), versions=3, crates=fetch)
    assert look.fetches_crates(WORTH_IT_AFTER)
    assert not look.fetches_crates(WORTH_IT_AFTER / 2)
    assert not look.fetches_crates(None)
    assert not LookAhead(_Indexes(), versions=3).fetches_crates(WORTH_IT_AFTER * 10)  # off


async def test_held_back_and_yanked_versions_are_never_fetched_ahead() -> None:
    syn = _versions("syn", "1.0.9", "1.0.10", "2.0.0", yanked=["1.0.9"])
    fetched = await _crates_fetched_ahead(WORTH_IT_AFTER * 2, [(syn, {"2.0.0": "held"})])
    assert fetched == ["syn@1.0.10"]


async def test_a_failed_fetch_ahead_is_no_answer_to_anyone(
    app_registry: Registry, mirror_settings: Any
) -> None:
    """Crates fetched ahead are verified before they are kept: one that fails its checksum
    is not cached, and when cargo asks, it gets the error explained, as without the
    look-ahead. One that passes is cached."""
    async with FakeUpstream(app_registry, latency=2 * WORTH_IT_AFTER) as upstream:
        upstream.faults.add("flip", match="/app/", times=100)
        ahead, used = _crates("ahead"), _crates("ahead_used")
        core, close = open_mirror(mirror_settings(upstream))
        try:
            await core.start()  # config.json: upstream's first answer time
            for name in ("itoa", "ryu", "memchr"):  # three more: now it is known to be far
                await core.serve_index(name, client())
            await core.serve_index("app", client())
            for _ in range(200):
                if {"app", "memchr"} <= {r.path.split("/")[4] for r in _downloads(upstream)}:
                    break
                await asyncio.sleep(0.02)
            await core.writes.flush()
            cached = set(core.store.iter_crates())
            assert _cksum(app_registry, "memchr") in cached  # fetched ahead of cargo
            assert _cksum(app_registry, "app") not in cached  # refused: never kept
            with pytest.raises(IntegrityError, match="checksum mismatch"):
                await core.fetch_crate("app", "1.0.0", client())
            # The metrics count what was fetched ahead, and what cargo then downloaded of it.
            assert _crates("ahead") - ahead == 1  # memchr; app was refused
            version = app_registry.versions("memchr")[0]
            await core.fetch_crate("memchr", version, client())
            await core.fetch_crate("memchr", version, client())
            assert _crates("ahead_used") - used == 1  # counted once
        finally:
            await close()


def _crates(outcome: str) -> float:
    value = metrics.REGISTRY.get_sample_value(
        "crate_mirror_cache_total", {"kind": "crate", "outcome": outcome}
    )
    return value or 0.0


def _downloads(upstream: FakeUpstream) -> list[Any]:
    return [r for r in upstream.requests.all() if r.path.endswith("/download")]


def _cksum(registry: Registry, name: str) -> str:
    return str(json.loads(registry.read_index(name).splitlines()[-1])["cksum"])
