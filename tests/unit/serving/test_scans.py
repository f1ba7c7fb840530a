"""Scan reports once per crate content: kept in the store by sha256, shared by concurrent asks."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from pathlib import Path

import pytest

from mirror.errors import IntegrityError
from mirror.scan import capabilities
from mirror.scan.report import Capability as C
from mirror.scan.report import CapabilityReport
from mirror.serving import scans as scans_module
from mirror.serving.scans import Scans
from mirror.store import FilesystemStore
from tests.unit.scan.test_capabilities import make_crate


def test_reports_round_trip_through_the_store_and_damage_reads_as_absent(tmp_path: Path) -> None:
    """Reports are stored by sha256; damaged or foreign entries read as absent and rescan."""
    store = FilesystemStore(tmp_path)
    data = make_crate({"src/lib.rs": "use std::fs;\n"})
    first = Scans(store).scan_bytes(data)
    assert Scans(store).known(first.sha256) == first  # a new process reads the stored one
    assert [r.sha256 for r in Scans(store).stored()] == [first.sha256]
    store.write_scan(first.sha256, b"{not json")
    assert Scans(store).known(first.sha256) is None
    other = make_crate({"src/lib.rs": "use std::net;\n"})
    foreign = Scans(FilesystemStore(tmp_path / "other")).scan_bytes(other)
    store.write_scan(first.sha256, json.dumps(foreign.to_json()).encode())
    assert Scans(store).known(first.sha256) is None  # a report about another crate
    assert Scans(store).scan_bytes(data) == first  # rescanned and rewritten
    assert Scans(store).known(first.sha256) == first


def test_an_older_report_format_is_scanned_again(tmp_path: Path) -> None:
    """A report from an older scanner reads as absent, so the new scanner's findings count."""
    store = FilesystemStore(tmp_path)
    report = Scans(store).scan_bytes(make_crate({"src/lib.rs": "use std::fs;\n"}))
    old = {**report.to_json(), "format": report.to_json()["format"] - 1}
    store.write_scan(report.sha256, json.dumps(old).encode())
    assert Scans(store).known(report.sha256) is None


def test_scan_paths_only_from_hex_digests(tmp_path: Path) -> None:
    """Path injection: a digest that is not 64 hex characters never becomes a file name."""
    store = FilesystemStore(tmp_path)
    with pytest.raises(IntegrityError, match="malformed"):
        store.read_scan("../../etc/passwd")
    with pytest.raises(IntegrityError, match="malformed"):
        store.write_scan("../../etc/passwd", b"{}")


async def test_known_report_skips_scanning_and_concurrent_asks_share_one_scan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fifty requests for one new crate make one scan; later asks are answered without one."""
    store = FilesystemStore(tmp_path)
    data = make_crate({"src/lib.rs": "use std::fs;\n"})
    real_scan = capabilities.scan_crate  # the function scans_module imported
    calls: list[int] = []

    def counting(body: bytes) -> CapabilityReport:
        calls.append(len(body))
        return real_scan(body)

    monkeypatch.setattr(scans_module, "scan_crate", counting)
    scans = Scans(store)
    first = scans.scan_bytes(data)
    reports = await asyncio.gather(*(Scans(store).report(first.sha256, lambda: data)
                                     for _ in range(3)))  # fmt: skip
    assert reports == [first] * 3 and len(calls) == 1
    fresh = FilesystemStore(tmp_path / "fresh")
    shared = Scans(fresh)
    reports = await asyncio.gather(*(shared.report(first.sha256, lambda: data) for _ in range(50)))
    assert all(r == first for r in reports) and len(calls) == 2
    assert C.FS in reports[0].capabilities


def test_made_since_names_scans_of_the_crates_asked_about(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Views ask whether their own crate was scanned since they were made; once the
    remembered scans are trimmed, a mark older than what is remembered counts as scanned
    (recomputing a view costs time; keeping a stale one hides a verdict)."""
    monkeypatch.setattr(scans_module, "MAX_MADE_REMEMBERED", 4)
    scans = Scans(FilesystemStore(tmp_path))
    start = scans.generation
    first = scans.scan_bytes(make_crate({"src/lib.rs": "// one\n"}))
    mark = scans.generation
    assert scans.made_since(start, [first.sha256])
    assert not scans.made_since(mark, [first.sha256])
    assert not scans.made_since(start, ["0" * 64])
    later = [scans.scan_bytes(make_crate({"src/lib.rs": f"// {i}\n"})) for i in range(3)]
    assert not scans.made_since(mark, [first.sha256])  # its own scan came before the mark
    assert scans.made_since(mark, [first.sha256, later[-1].sha256])
    # A fifth scan, four remembered at most: the two oldest are forgotten, and a mark from
    # before either of them is answered "yes" whatever it asks about.
    scans.scan_bytes(make_crate({"src/lib.rs": "// five\n"}))
    assert scans.made_since(mark, ["0" * 64])
    assert not scans.made_since(mark + 1, ["0" * 64])
    assert scans.made_since(mark + 1, [later[-1].sha256])


async def test_a_report_a_peer_stored_counts_as_new_to_this_process(tmp_path: Path) -> None:
    """A replica finds a crate's report in the bucket a peer wrote it to, instead of scanning
    it: the views of this process that judged the crate without it must be judged again."""

    class Shared(FilesystemStore):
        def read_scan(self, sha256: str) -> bytes | None:
            return None  # not in this replica's local copy ...

        async def load_scan(self, sha256: str) -> bytes | None:
            return super().read_scan(sha256)  # ... but in the bucket the replicas share

    data = make_crate({"src/lib.rs": "use std::net;\n"})
    peer = Scans(FilesystemStore(tmp_path)).scan_bytes(data)
    scans = Scans(Shared(tmp_path))
    mark = scans.generation
    assert await scans.report(peer.sha256, lambda: b"never read") == peer
    assert scans.made_since(mark, [peer.sha256])


def test_a_crate_found_unscanned_is_not_looked_for_on_disk_again_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Judging an index file asks for the report of every version twice; on a cold cache
    the second ask is answered from memory. A report made in this process is known at
    once; one a peer process writes, once the miss has expired."""
    reads: list[str] = []

    class Counting(FilesystemStore):
        def read_scan(self, sha256: str) -> bytes | None:
            reads.append(sha256)
            return super().read_scan(sha256)

    clock = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    data = make_crate({"src/lib.rs": "use std::net;\n"})
    other = make_crate({"src/lib.rs": "use std::fs;\n"})
    scans = Scans(Counting(tmp_path))
    peer = Scans(FilesystemStore(tmp_path))
    mine, theirs = hashlib.sha256(data).hexdigest(), hashlib.sha256(other).hexdigest()
    assert scans.known(mine) is None and scans.known(theirs) is None
    assert scans.known(mine) is None and scans.known(theirs) is None
    assert reads == [mine, theirs]  # the second asks were not read from disk
    assert scans.scan_bytes(data).sha256 == mine
    assert scans.known(mine) is not None  # made here: known at once
    peer.scan_bytes(other)
    assert scans.known(theirs) is None  # a peer's, within the window: not yet
    clock[0] += scans_module.ABSENT_FOR + 0.1
    assert scans.known(theirs) is not None
