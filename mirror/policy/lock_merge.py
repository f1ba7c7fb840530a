"""Merging two edits of the capability lock made on different replicas (pure).

Replicas share the lock through the bucket (mirror.serving.lock_sync). Each remembers the
version it last agreed on (`base`); when its own file (`ours`: an `approve`, a `revoke`, a
trust-on-first-use record) and the bucket's (`theirs`) have both moved on, the result keeps
every change either side made, approval by approval and revocation by revocation: what we
added is added, what we removed is removed, and everything else is as they have it. Plain
last-writer-wins would lose an approval, or worse, bring back one that was revoked.

A revocation (the tombstone that keeps a revoked crate held, and its trust-on-first-use
records ignored, until someone approves it again) is merged the same way. When one side
revoked a crate while the other approved it anew, the new approval survives (it was made
after looking at the crate, like any `approve`, which lifts a tombstone) and the tombstone
goes: a lock never holds both for one crate (the lock file's validator refuses that).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TypeVar

from mirror.index import canonical_name
from mirror.policy.capability_lock import Approval, CapabilityLock

_T = TypeVar("_T")


def merge_locks(
    base: CapabilityLock, ours: CapabilityLock, theirs: CapabilityLock
) -> CapabilityLock:
    crates: dict[str, tuple[Approval, ...]] = {}
    for name in sorted({*base.crates, *ours.crates, *theirs.crates}):
        before = set(base.crates.get(name, ()))
        mine = ours.crates.get(name, ())
        removed = before - set(mine)  # revoked (or replaced by a widened approval) here
        added = [a for a in mine if a not in before]
        kept = [a for a in theirs.crates.get(name, ()) if a not in removed]
        merged = (*kept, *(a for a in added if a not in kept))
        if merged:
            crates[name] = merged
    approved = {canonical_name(name) for name in crates}
    revoked = {
        name: tombstone
        for name, tombstone in _merge_entries(base.revoked, ours.revoked, theirs.revoked).items()
        if canonical_name(name) not in approved
    }
    return CapabilityLock(MappingProxyType(crates), MappingProxyType(dict(sorted(revoked.items()))))


def _merge_entries(
    base: Mapping[str, _T], ours: Mapping[str, _T], theirs: Mapping[str, _T]
) -> dict[str, _T]:
    """Per key: ours where we changed it (added, replaced or removed), else theirs."""
    out = dict(theirs)
    for name in {*base, *ours}:
        if name not in ours:
            out.pop(name, None)  # we removed it (approved again here)
        elif base.get(name) != ours[name]:
            out[name] = ours[name]  # we added or replaced it
    return out
