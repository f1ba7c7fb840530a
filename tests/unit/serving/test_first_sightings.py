"""First sightings under `first_seen: trust`: answered once the archive is safe, scanned and
recorded after downloads pause, at the lowest priority, in another process
(mirror.serving.capability_guard, mirror.serving.scans).

The background scan is gated in most tests (`_Gated`), so what is answered before the scan
ends is visible, and starts without waiting for a pause unless a test says otherwise; one
test runs the real low-priority process.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from pathlib import Path

import pytest

from mirror.audit import AuditEvent
from mirror.config import Settings
from mirror.errors import ArchiveError
from mirror.index import IndexLine
from mirror.policy.capability_lock import RECORDING
from mirror.policy.decision import Action, Mode
from mirror.policy.schema import CapabilitiesRule
from mirror.scan.capabilities import report_json, scan_crate
from mirror.serving import capability_guard as guard_module
from mirror.serving.capability_guard import CapabilityGuard, LockPlaces
from mirror.serving.downloads import CrateFile
from mirror.serving.scans import Scans
from mirror.store import FilesystemStore
from tests.unit.scan.test_archive import build_tar, gz
from tests.unit.scan.test_capabilities import make_crate


class _Gated:
    """The background scanner, in this process, held until `release`."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.started: list[int] = []
        self.turn = asyncio.Lock()

    async def scan(self, data: bytes) -> bytes:
        self.started.append(len(data))
        await self.gate.wait()
        return report_json(scan_crate(data))

    def release(self) -> None:
        self.gate.set()


def _guard(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    mode: Mode = Mode.WARN,
    *,
    quiet: float = 0.0,
    within: float = 10.0,
) -> tuple[CapabilityGuard, list[AuditEvent], _Gated]:
    """A guard whose background scans wait for `release`, and the audit events it sends.
    Background scans start once downloads paused for `quiet` seconds, or `within` seconds."""
    monkeypatch.setattr(guard_module, "RECORD_WHEN_QUIET", quiet)
    monkeypatch.setattr(guard_module, "RECORD_WITHIN", within)
    settings = Settings(cache_dir=tmp_path / "cache")
    places = LockPlaces.of(tmp_path / "capabilities.lock.yaml", settings)
    scans = Scans(FilesystemStore(tmp_path / "cache"))
    gated = _Gated()
    monkeypatch.setattr(scans, "_background", gated)
    audit: list[AuditEvent] = []
    guard = CapabilityGuard(places, CapabilitiesRule(mode=mode), scans, audit.append)
    return guard, audit, gated


def _crate(tmp_path: Path, name: str, version: str, source: str) -> tuple[IndexLine, CrateFile]:
    data = make_crate({"src/lib.rs": source}, name=name, version=version)
    cksum = hashlib.sha256(data).hexdigest()
    raw = json.dumps({"name": name, "vers": version, "cksum": cksum, "deps": []}).encode()
    path = tmp_path / f"{cksum}.crate"
    path.write_bytes(data)
    return IndexLine.parse(raw), CrateFile(path, data, was_cached=False)


def _recorded(guard: CapabilityGuard) -> str:
    """The trust-on-first-use records, as written."""
    path = guard.places.recorded
    return path.read_text() if path.exists() else ""


async def test_a_first_sighting_is_answered_before_its_scan_and_recorded_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    guard, audit, gated = _guard(tmp_path, monkeypatch)
    line, crate = _crate(tmp_path, "demo", "1.0.0", "use std::net::TcpStream;\n")
    decision = await asyncio.wait_for(guard.decide(line, crate), 5)
    assert decision.action is Action.ALLOW and decision.details.get(RECORDING)
    await asyncio.sleep(0.05)
    assert gated.started and "demo" not in _recorded(guard)  # scanning, nothing recorded yet
    again = await asyncio.wait_for(guard.decide(line, crate), 5)  # same version meanwhile
    assert again.details.get(RECORDING)
    gated.release()
    await asyncio.wait_for(guard.settle(), 10)
    assert "demo" in _recorded(guard) and "net" in _recorded(guard)
    approvals = [e for e in audit if e.action == "approve"]
    assert len(approvals) == 1 and "trust on first use" in approvals[0].reason
    final = await guard.decide(line, crate)  # known now: a plain allow, no scan
    assert final.action is Action.ALLOW and not final.details.get(RECORDING)
    assert len(gated.started) == 1


async def test_first_sightings_are_scanned_once_downloads_pause(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cold build asks for its crates one after another: scans meanwhile would take the CPU
    time its requests wait for, so they start once the downloads pause."""
    guard, _, gated = _guard(tmp_path, monkeypatch, quiet=0.4, within=60)
    crates = [_crate(tmp_path, f"c{i}", "1.0.0", "pub fn f() {}\n") for i in range(8)]
    for line, crate in crates:  # a download every 0.1 s, each a first sighting
        assert (await guard.decide(line, crate)).details.get(RECORDING)
        await asyncio.sleep(0.1)
    assert not gated.started  # 0.8 s of downloads, and no scan yet
    await asyncio.sleep(1.0)
    assert gated.started  # the pause came
    gated.release()
    await asyncio.wait_for(guard.settle(), 10)
    assert all(f"c{i}" in _recorded(guard) for i in range(8))


async def test_a_server_that_never_pauses_still_records_within_a_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    guard, _, gated = _guard(tmp_path, monkeypatch, quiet=60, within=0.3)
    first, first_crate = _crate(tmp_path, "first", "1.0.0", "pub fn f() {}\n")
    await guard.decide(first, first_crate)
    for i in range(10):  # downloads keep coming
        line, crate = _crate(tmp_path, f"c{i}", "1.0.0", "pub fn f() {}\n")
        await guard.decide(line, crate)
        await asyncio.sleep(0.1)
        if gated.started:
            break
    assert gated.started, "no scan started within 1 s of downloads"
    gated.release()
    await asyncio.wait_for(guard.settle(), 10)


async def test_settle_records_at_once_and_later_sightings_wait_for_a_pause_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`prefetch`, `export` and the console call settle: they do not wait for a pause. A
    server that was asked once defers the sightings after it again."""
    guard, _, gated = _guard(tmp_path, monkeypatch, quiet=60, within=120)
    gated.release()
    early, early_crate = _crate(tmp_path, "early", "1.0.0", "pub fn f() {}\n")
    await guard.decide(early, early_crate)
    await asyncio.sleep(0.1)
    assert not gated.started
    await asyncio.wait_for(guard.settle(), 10)
    assert "early" in _recorded(guard)
    late, late_crate = _crate(tmp_path, "late", "1.0.0", "pub fn f() {}\n")
    await guard.decide(late, late_crate)
    await asyncio.sleep(0.2)
    assert len(gated.started) == 1 and "late" not in _recorded(guard)
    await asyncio.wait_for(guard.settle(), 10)
    assert "late" in _recorded(guard)


@pytest.mark.parametrize("in_memory", [True, False])  # checked on the loop, or in a thread
async def test_a_hostile_archive_is_refused_before_any_answer(
    in_memory: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The archive checks a scan would make still come first: nothing is handed out."""
    guard, audit, gated = _guard(tmp_path, monkeypatch)
    data = gz(build_tar([("demo-1.0.0/Cargo.toml", b"[package]\n"), ("demo-1.0.0/../../x", b"")]))
    cksum = hashlib.sha256(data).hexdigest()
    raw = json.dumps({"name": "demo", "vers": "1.0.0", "cksum": cksum}).encode()
    path = tmp_path / "x.crate"
    path.write_bytes(data)
    crate = CrateFile(path, data if in_memory else None, was_cached=False)
    line = IndexLine.parse(raw)
    for _ in range(2):  # and again: a refused sighting leaves nothing behind
        with pytest.raises(ArchiveError, match="unsafe path"):
            await guard.decide(line, crate)
    assert not gated.started and not guard._sightings and not audit


async def test_another_version_is_compared_with_the_first_once_it_is_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first version seen is trusted; a second one asked for while the first is still
    being scanned in the background is judged against the first's record, which that request
    makes itself rather than wait for the low-priority process: what it adds is held."""
    guard, _, gated = _guard(tmp_path, monkeypatch, Mode.BLOCK)
    first, first_crate = _crate(tmp_path, "demo", "1.0.0", "pub fn f() {}\n")
    second, second_crate = _crate(tmp_path, "demo", "1.1.0", "use std::net::TcpStream;\n")
    assert (await guard.decide(first, first_crate)).details.get(RECORDING)
    await asyncio.sleep(0.05)
    assert gated.started  # the background scan of 1.0.0 is under way (and held)
    decision = await asyncio.wait_for(guard.decide(second, second_crate), 10)
    assert decision.action is Action.BLOCK and "net (src/lib.rs:1" in decision.reason
    assert "demo" in _recorded(guard) and "1.0.0" in _recorded(guard)
    gated.release()
    await asyncio.wait_for(guard.settle(), 10)
    assert _recorded(guard).count("first seen as demo 1.0.0") == 1  # once, by the request


async def test_a_request_does_not_queue_behind_other_background_scans(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first version's scan has not had its background turn yet (another crate's scan
    holds it): the request for the second version scans the first itself."""
    guard, _, gated = _guard(tmp_path, monkeypatch, Mode.BLOCK)
    other, other_crate = _crate(tmp_path, "other", "1.0.0", "pub fn g() {}\n")
    first, first_crate = _crate(tmp_path, "demo", "1.0.0", "pub fn f() {}\n")
    second, second_crate = _crate(tmp_path, "demo", "1.1.0", "pub fn f() {}\n")
    await guard.decide(other, other_crate)  # takes the background turn and holds it (gated)
    await guard.decide(first, first_crate)  # its background scan waits for its turn
    await asyncio.sleep(0.05)
    decision = await asyncio.wait_for(guard.decide(second, second_crate), 10)
    assert decision.action is Action.ALLOW and not decision.details.get(RECORDING)
    assert "demo" in _recorded(guard)  # 1.0.0 recorded by the request ...
    assert "other" not in _recorded(guard)  # ... while `other` still waits for its scan
    gated.release()
    await asyncio.wait_for(guard.settle(), 10)
    assert "other" in _recorded(guard)
    assert len(gated.started) == 1  # demo 1.0.0 was never scanned twice


def _children() -> set[int]:
    """This process's child processes."""
    children = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue  # gone meanwhile
            if int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid():
                children.add(int(entry.name))
    return children


async def test_the_background_scanner_is_one_separate_lowest_priority_process(
    tmp_path: Path,
) -> None:
    """One process and nothing else: multiprocessing's spawn would add a resource tracker
    (13 MB) that outlives it."""
    before = _children()
    scans = Scans(FilesystemStore(tmp_path))
    data = make_crate({"src/lib.rs": "use std::process::Command;\n"})
    sha256 = hashlib.sha256(data).hexdigest()
    try:
        report = await asyncio.wait_for(scans.report(sha256, lambda: data, background=True), 60)
        assert report == Scans(FilesystemStore(tmp_path / "direct")).scan_bytes(data)
        assert Scans(FilesystemStore(tmp_path)).known(sha256) == report  # stored
        pid = scans._background.pid
        assert pid is not None and pid != os.getpid()
        assert _children() - before == {pid}
        assert os.getpriority(os.PRIO_PROCESS, pid) == os.getpriority(os.PRIO_PROCESS, 0) + 19
    finally:
        scans.close()
    assert scans._background.pid is None


async def test_a_hostile_crate_is_refused_by_the_background_scanner_as_by_a_scan(
    tmp_path: Path,
) -> None:
    scans = Scans(FilesystemStore(tmp_path))
    hostile = gz(build_tar([("demo-1.0.0/Cargo.toml", b"[package]\n"), ("demo-1.0.0/../x", b"")]))
    try:
        with pytest.raises(ArchiveError, match="unsafe path"):
            await asyncio.wait_for(scans._background.scan(hostile), 60)
        good = make_crate({"src/lib.rs": "pub fn f() {}\n"})
        body = await asyncio.wait_for(scans._background.scan(good), 60)  # the same process
        assert json.loads(body)["sha256"] == hashlib.sha256(good).hexdigest()
    finally:
        scans.close()


async def test_a_background_scanner_that_dies_is_replaced_at_the_next_scan(
    tmp_path: Path,
) -> None:
    """Killed (the OOM killer, an operator): the scan under way fails as a scan does, and the
    next one starts a new process."""
    import signal

    scans = Scans(FilesystemStore(tmp_path))
    scanner = scans._background
    small = make_crate({"src/lib.rs": "pub fn f() {}\n"})
    try:
        await asyncio.wait_for(scanner.scan(small), 60)  # the process is up
        pid = scanner.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        await asyncio.sleep(0.5)
        with pytest.raises(ArchiveError, match="background scanner stopped"):
            await asyncio.wait_for(scanner.scan(small), 60)
        assert scanner.pid is None
        body = await asyncio.wait_for(scanner.scan(small), 60)  # a new process
        assert json.loads(body)["sha256"] == hashlib.sha256(small).hexdigest()
        assert scanner.pid not in (None, pid)
    finally:
        scans.close()


async def test_a_scan_cancelled_midway_leaves_the_next_one_a_fresh_process(
    tmp_path: Path,
) -> None:
    """Its answer would otherwise be read as the next crate's report."""
    scans = Scans(FilesystemStore(tmp_path))
    scanner = scans._background
    first = make_crate({"src/lib.rs": "pub fn f() {}\n"}, name="first")
    second = make_crate({"src/lib.rs": "use std::net::TcpStream;\n"}, name="second")
    try:
        task = asyncio.ensure_future(scanner.scan(first))
        await asyncio.sleep(0.05)  # started, no answer yet (the process is still starting)
        pid = scanner.pid
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        body = await asyncio.wait_for(scanner.scan(second), 60)
        assert json.loads(body)["sha256"] == hashlib.sha256(second).hexdigest()
        assert scanner.pid not in (None, pid)
    finally:
        scans.close()
