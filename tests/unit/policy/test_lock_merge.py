"""Three-way merge of the capability lock: every change either replica made survives."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from mirror.policy.capability_lock import CapabilityLock, revocation
from mirror.policy.lock_merge import merge_locks
from mirror.scan.report import Capability
from mirror.sources.capability_lockfile import load_lock, save_lock

WHEN = datetime(2026, 11, 27, tzinfo=UTC)
BASE = CapabilityLock().with_approval("itoa", None, {Capability.UNSAFE}, "seed", "r", WHEN)


def _approve(lock: CapabilityLock, name: str, *caps: Capability) -> CapabilityLock:
    return lock.with_approval(name, None, set(caps), "someone", "reviewed", WHEN)


def test_changes_on_both_sides_are_kept() -> None:
    ours = _approve(BASE, "serde", Capability.PROC_MACRO)
    theirs = _approve(BASE, "libc", Capability.FFI)
    merged = merge_locks(BASE, ours, theirs)
    assert set(merged.crates) == {"itoa", "serde", "libc"}
    assert set(merge_locks(BASE, theirs, ours).crates) == set(merged.crates)


def test_a_revocation_is_not_undone_by_a_stale_copy() -> None:
    """Last-writer-wins with the other replica's older copy would resurrect it."""
    ours = BASE.without("itoa")
    theirs = _approve(BASE, "libc", Capability.FFI)  # still lists itoa: it never saw the revoke
    merged = merge_locks(BASE, ours, theirs)
    assert "itoa" not in merged.crates and "libc" in merged.crates


def test_their_revocation_is_kept_when_we_changed_nothing_there() -> None:
    theirs = BASE.without("itoa")
    ours = _approve(BASE, "serde", Capability.PROC_MACRO)
    assert set(merge_locks(BASE, ours, theirs).crates) == {"serde"}


def test_a_widened_approval_replaces_the_old_one() -> None:
    ours = BASE.with_approval("itoa", None, {Capability.FFI}, "someone", "more", WHEN)
    merged = merge_locks(BASE, ours, BASE)
    assert merged.approved_for("itoa", "1.0.0") == frozenset({Capability.UNSAFE, Capability.FFI})
    assert len(merged.crates["itoa"]) == 1


def test_nothing_changed_is_nothing_changed() -> None:
    assert merge_locks(BASE, BASE, BASE) == BASE
    assert merge_locks(CapabilityLock(), BASE, CapabilityLock()) == BASE  # first sync: push


def _revoke(lock: CapabilityLock, name: str) -> CapabilityLock:
    return lock.without(name, revoked=revocation("alice", "compromised", WHEN))


def test_a_revocation_tombstone_survives_the_merge() -> None:
    """The tombstone keeps a revoked crate held (and its first-use records ignored) on every
    replica; a merge that dropped it would let trust-on-first-use records approve it again."""
    ours = _revoke(BASE, "itoa")
    theirs = _approve(BASE, "libc", Capability.FFI)
    for merged in (merge_locks(BASE, ours, theirs), merge_locks(BASE, theirs, ours)):
        assert merged.revocation("itoa") is not None and "itoa" not in merged.crates
        assert "libc" in merged.crates
    pulled = merge_locks(ours, ours, merge_locks(BASE, theirs, ours))  # the other side's view
    assert pulled.revocation("itoa") is not None


def test_an_approval_again_lifts_the_tombstone_on_the_other_side_too() -> None:
    revoked = _revoke(BASE, "itoa")
    ours = _approve(revoked, "itoa", Capability.UNSAFE)  # approved again here
    theirs = _approve(revoked, "libc", Capability.FFI)
    merged = merge_locks(revoked, ours, theirs)
    assert merged.revocation("itoa") is None and "itoa" in merged.crates
    assert "libc" in merged.crates


def test_a_revoke_racing_a_new_approval_keeps_the_approval_and_a_valid_lock(
    tmp_path: Path,
) -> None:
    """One replica revokes itoa while the other approves a new range of it: the new approval
    (a person looked at it) stays, the tombstone goes, and the file still validates."""
    ours = _revoke(BASE, "itoa")
    theirs = BASE.with_approval("itoa", "^2", {Capability.FFI}, "bob", "v2 reviewed", WHEN)
    merged = merge_locks(BASE, ours, theirs)
    assert merged.revocation("itoa") is None
    assert merged.approved_for("itoa", "2.0.0") == frozenset({Capability.FFI})
    assert merged.approved_for("itoa", "1.0.0") == frozenset()  # the revoked approval is gone
    save_lock(merged, tmp_path / "lock.yaml")
    assert load_lock(tmp_path / "lock.yaml") == merged
