"""Merging two edits of the capability lock made on different replicas (pure).

Replicas share the lock through the bucket (mirror.serving.lock_sync). Each remembers the
version it last agreed on (`base`); when its own file (`ours`: an `approve`, a `revoke`, a
trust-on-first-use record) and the bucket's (`theirs`) have both moved on, the result keeps
every change either side made, approval by approval: what we added is added, what we removed
is removed, and everything else is as they have it. Plain last-writer-wins would lose an
approval, or worse, bring back one that was revoked.
"""

from __future__ import annotations

from types import MappingProxyType

from mirror.policy.capability_lock import Approval, CapabilityLock


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
    return CapabilityLock(MappingProxyType(crates))
