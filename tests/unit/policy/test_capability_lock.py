"""The capability lock: file validation, approvals and revocations, and the pure decision."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from mirror.errors import ConfigError
from mirror.policy.capability_lock import (
    CapabilityLock,
    CapabilityRule,
    decide_capabilities,
    record_first_seen,
)
from mirror.policy.decision import Action, Mode
from mirror.scan.capabilities import Capability, CapabilityReport, Evidence, scan_crate
from mirror.sources.capability_lockfile import load_lock, save_lock, update_lock
from tests import REPO
from tests.fixtures.crates import debian_crate_dir, pack_crate

C = Capability
WHEN = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
REPO_LOCK = REPO / "policies" / "capabilities.lock.yaml"


def report(name: str, version: str, caps: dict[Capability, list[Evidence]]) -> CapabilityReport:
    ordered = {c: tuple(caps[c]) for c in Capability if c in caps}
    return CapabilityReport(name, version, "ab" * 32, MappingProxyType(ordered))


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "capabilities.lock.yaml"
    path.write_text(text)
    return path


def test_repository_seed_lock_is_valid() -> None:
    """policies/capabilities.lock.yaml loads and its ranges apply."""
    lock = load_lock(REPO_LOCK)
    assert lock.approved_for("serde_derive", "1.0.152") == frozenset(
        {
            C.BUILD_SCRIPT,
            C.PROC_MACRO,
            C.PROCESS,
            C.ENV,
        }
    )
    assert lock.approved_for("libz-sys", "2.0.0") == frozenset()  # outside ">=1.1, <2"
    assert lock.approved_for("never-heard-of-it", "1.0.0") is None


def test_missing_lock_file_is_empty(tmp_path: Path) -> None:
    """A fresh deployment has no lock yet: nothing is approved, nothing fails."""
    assert load_lock(tmp_path / "absent.yaml").crates == {}


def test_invalid_lock_names_file_line_and_field(tmp_path: Path) -> None:
    """Every problem is reported with its line, so a reviewer can fix the file."""
    path = write(
        tmp_path,
        "version: 1\n"  # 1
        "crates:\n"  # 2
        "  serde:\n"  # 3
        "    - capabilities: [net, telepathy]\n"  # 4
        "      versions: '>=banana'\n"  # 5
        "      approved_by: alice\n"  # 6
        "      approved_at: '2026-01-01T00:00:00Z'\n"  # 7
        "      colour: blue\n"  # 8
        "  ../etc:\n"  # 9
        "    - capabilities: []\n",  # 10
    )
    with pytest.raises(ConfigError) as info:
        load_lock(path)
    where = {(p.line, p.field) for p in info.value.problems}
    assert (4, "crates.serde[0].capabilities") in where
    assert (5, "crates.serde[0].versions") in where
    assert (4, "crates.serde[0].reason") in where  # required, reported at the entry
    assert (8, "crates.serde[0].colour") in where
    assert (9, "crates.../etc") in where
    assert all(p.file == str(path) for p in info.value.problems)


def test_same_crate_spelled_twice_is_rejected(tmp_path: Path) -> None:
    """`serde-json` and `serde_json` are one crate; two entries would be ambiguous."""
    entry = "    - {capabilities: [fs], approved_by: a, approved_at: '2026-01-01', reason: r}\n"
    path = write(tmp_path, f"version: 1\ncrates:\n  serde_json:\n{entry}  Serde-Json:\n{entry}")
    with pytest.raises(ConfigError, match="same crate"):
        load_lock(path)


def test_approve_widen_revoke_and_save_round_trip(tmp_path: Path) -> None:
    """Approvals merge per range, revocations narrow, and the file reloads identically."""
    lock = CapabilityLock().with_approval("Foo_Bar", None, {C.FS}, "alice", "reads config", WHEN)
    lock = lock.with_approval("foo-bar", None, {C.NET}, "bob", "fetches updates", WHEN)
    lock = lock.with_approval("foo_bar", ">=2", {C.PROCESS}, "bob", "v2 spawns git", WHEN)
    assert lock.approved_for("foo-bar", "1.5.0") == frozenset({C.FS, C.NET})
    assert lock.approved_for("FOO_BAR", "2.1.0") == frozenset({C.FS, C.NET, C.PROCESS})
    path = tmp_path / "lock.yaml"
    save_lock(lock, path)
    again = load_lock(path)
    assert again == lock
    assert "fetches updates" in path.read_text()
    narrowed = again.without("foo_bar", None, {C.NET})
    assert narrowed.approved_for("foo_bar", "1.0.0") == frozenset({C.FS})
    assert narrowed.without("foo_bar", ">=2").approved_for("foo_bar", "2.0.0") == frozenset({C.FS})
    assert narrowed.without("foo_bar").approved_for("foo_bar", "1.0.0") is None


def test_prerelease_is_not_covered_by_a_plain_range() -> None:
    """`>=1` does not approve 2.0.0-rc.1 (cargo's pre-release opt-in rule)."""
    lock = CapabilityLock().with_approval("x", ">=1", {C.NET}, "a", "r", WHEN)
    assert lock.approved_for("x", "2.0.0-rc.1") == frozenset()


def test_new_capability_blocks_with_diff_and_command() -> None:
    """A patch release gaining a build script and a process spawn is blocked, with evidence."""
    lock = CapabilityLock().with_approval("serde_derive", None, {C.PROC_MACRO}, "a", "r", WHEN)
    new = report(
        "serde_derive",
        "1.0.200",
        {
            C.PROC_MACRO: [Evidence("Cargo.toml", 20, "lib.proc-macro = true")],
            C.BUILD_SCRIPT: [Evidence("build.rs", 1, "build.rs")],
            C.PROCESS: [Evidence("build.rs", 12, "std::process::Command")],
        },
    )
    decision = decide_capabilities(new, lock, CapabilityRule(Mode.BLOCK, "trust"))
    assert decision.action is Action.BLOCK
    assert decision.rule == "capabilities"
    assert "serde_derive 1.0.200 adds: build_script (build.rs:1), process (build.rs:12 " in (
        decision.reason
    )
    assert decision.details["added"] == {
        "build_script": [{"file": "build.rs", "line": 1, "item": "build.rs"}],
        "process": [{"file": "build.rs", "line": 12, "item": "std::process::Command"}],
    }
    assert decision.details["approve"] == (
        'crate-mirror approve serde_derive@1.0.200 --caps build_script,process --reason "..."'
    )
    warned = decide_capabilities(new, lock, CapabilityRule(Mode.WARN, "trust"))
    assert warned.action is Action.WARN
    assert decide_capabilities(new, lock, CapabilityRule(Mode.OFF, "trust")).action is Action.ALLOW


def test_approved_capabilities_are_allowed() -> None:
    """Nothing new: allowed, whatever the mode."""
    lock = CapabilityLock().with_approval("a", None, {C.FS, C.NET}, "x", "r", WHEN)
    same = report("a", "1.0.1", {C.FS: [Evidence("src/lib.rs", 3, "std::fs::read")]})
    decision = decide_capabilities(same, lock, CapabilityRule(Mode.BLOCK, "require-approval"))
    assert decision.action is Action.ALLOW


def test_first_seen_trust_records_and_require_approval_blocks() -> None:
    """Trust-on-first-use allows and asks to record; require-approval holds everything."""
    first = report("newcrate", "0.1.0", {C.NET: [Evidence("src/lib.rs", 1, "use std::net")]})
    trusted = decide_capabilities(first, CapabilityLock(), CapabilityRule(Mode.BLOCK, "trust"))
    assert trusted.action is Action.ALLOW and trusted.details["record"] is True
    recorded = record_first_seen(CapabilityLock(), first, WHEN)
    assert recorded.approved_for("newcrate", "0.2.0") == frozenset({C.NET})
    held = decide_capabilities(
        first, CapabilityLock(), CapabilityRule(Mode.BLOCK, "require-approval")
    )
    assert held.action is Action.BLOCK
    assert set(held.details["added"]) == {"net"}
    assert "not in the capability lock" in held.reason


def test_real_serde_derive_against_a_narrow_lock() -> None:
    """The real serde_derive scan, with only proc_macro approved, blocks on its build script."""
    real = scan_crate(pack_crate(debian_crate_dir("serde_derive")))
    lock = CapabilityLock().with_approval("serde_derive", None, {C.PROC_MACRO}, "a", "r", WHEN)
    decision = decide_capabilities(real, lock, CapabilityRule(Mode.BLOCK, "trust"))
    assert decision.blocks
    assert {"build_script", "process", "env"} <= set(decision.details["added"])
    assert "proc_macro" not in decision.details["added"]


def _approve_many(path: str, worker: int) -> None:
    for i in range(15):

        def add(lock: CapabilityLock, name: str = f"w{worker}-c{i}") -> CapabilityLock:
            return lock.with_approval(name, None, {C.FS}, "p", "r", WHEN)

        update_lock(Path(path), add)


def test_concurrent_updates_are_not_lost(tmp_path: Path) -> None:
    """Two processes approving at once: every approval survives (flock + reload)."""
    path = tmp_path / "lock.yaml"
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=_approve_many, args=(str(path), w)) for w in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(30)
    assert all(w.exitcode == 0 for w in workers)
    assert len(load_lock(path).crates) == 30


@pytest.mark.parametrize(
    ("name", "version"), [("itoa", None), ("libz-sys", None), ("serde_derive", None)]
)
def test_seed_lock_allows_the_versions_it_was_reviewed_on(name: str, version: str | None) -> None:
    """The shipped seed approves exactly what the scanner finds in the Debian sources."""
    real = scan_crate(pack_crate(debian_crate_dir(name, version)))
    decision = decide_capabilities(
        real, load_lock(REPO_LOCK), CapabilityRule(Mode.BLOCK, "require-approval")
    )
    assert decision.action is Action.ALLOW, decision.reason


def test_recording_many_crates_parses_the_file_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Trust-on-first-use records one crate at a time: a write must not re-parse the whole
    file it wrote itself (3,000 crates took 1.3 s each), yet any other change is read."""
    from mirror import yamlfile
    from mirror.sources import capability_lockfile

    parsed: list[Path] = []
    real = yamlfile.load_located  # the function capability_lockfile imported

    def counted(p: Path) -> Any:
        parsed.append(p)
        return real(p)

    monkeypatch.setattr(capability_lockfile, "load_located", counted)
    path = tmp_path / "tofu.yaml"

    def approving(name: str) -> Callable[[CapabilityLock], CapabilityLock]:
        return lambda lock: lock.with_approval(name, None, {C.FS}, "t", "r", WHEN)

    for i in range(20):
        update_lock(path, approving(f"c{i}"))
    assert parsed == []  # each write's own result is known without reading it back
    assert len(load_lock(path).crates) == 20 and parsed == []
    edited = path.read_text().replace('reason: "r"', 'reason: "edited by hand"', 1)
    path.write_text(edited)  # in place: same inode, new mtime and size
    reasons = {a.reason for apps in load_lock(path).crates.values() for a in apps}
    assert "edited by hand" in reasons
    assert parsed == [path]
