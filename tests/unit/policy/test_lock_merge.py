"""Three-way merge of the capability lock: every change either replica made survives."""

from __future__ import annotations

from datetime import UTC, datetime

from mirror.policy.capability_lock import CapabilityLock
from mirror.policy.lock_merge import merge_locks
from mirror.scan.report import Capability

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
    assert merged.approved_for("itoa", "1.0.0") == {Capability.UNSAFE, Capability.FFI}
    assert len(merged.crates["itoa"]) == 1


def test_nothing_changed_is_nothing_changed() -> None:
    assert merge_locks(BASE, BASE, BASE) == BASE
    assert merge_locks(CapabilityLock(), BASE, CapabilityLock()) == BASE  # first sync: push
