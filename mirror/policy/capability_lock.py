"""The capability lock: which capabilities a human approved for each crate, and the decision.

`policies/capabilities.lock.yaml` is meant for code review: per crate, a list of approvals,
each with the capabilities it allows, an optional cargo version requirement it is limited
to, who approved, when and why. `decide_capabilities` is pure: a scan report and the lock in,
a Decision out. It stops the "innocent crate turns malicious in a patch release" attack
(a new version suddenly gains a build script that runs `curl | sh`, or a network client):
anything the crate could not do before needs a human to say yes.

Two files feed one lock: the reviewed lock (`policies/capabilities.lock.yaml`, approvals by
people, tracked like code) and the server's trust-on-first-use records (under the cache
directory, never in the checkout); `merged` combines them. A revoked crate keeps a tombstone
in the reviewed lock (`revoked:`), so it stays known: it is blocked until a person approves it
again, never trusted on first use a second time, whatever trust-on-first-use once recorded.

Reading and writing the file is `mirror.sources.capability_lockfile`'s job; `render` (the
text format, a pure function of the lock) stays here next to the data it renders.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Literal

from mirror.index import canonical_name, validate_name
from mirror.policy.decision import Action, Decision, Mode
from mirror.policy.semver import Version, VersionReq
from mirror.printable import printable
from mirror.scan.report import Capability, CapabilityReport, CapabilitySet, Evidence

LOCK_FORMAT = 1
RULE = "capabilities"
TOFU_APPROVER = "trust-on-first-use"
ENTRY_KEYS = ("capabilities", "versions", "approved_by", "approved_at", "reason", "reviewed")
REVOKED_KEYS = ("revoked_by", "revoked_at", "reason")
# Decision detail: a version hidden from the index only until its scan is known (the serving
# side scans it in the background; a download scans it on the spot, so it is not enforced).
PENDING_SCAN = "pending_scan"
RECORDING = "recording"  # detail: allowed on first sighting, its scan and record follow


@dataclass(frozen=True)
class CapabilityRule:
    mode: Mode = Mode.BLOCK
    # A crate never seen before: record what it has and allow it, or hold it for approval.
    first_seen: Literal["trust", "require-approval"] = "trust"
    # Appended to printed approve commands: the lock, cache and audit log the server uses, so
    # a copied command acts on them (`--lock ... --cache-dir ... --audit-dir ...`).
    command_flags: str = ""


@dataclass(frozen=True)
class Approval:
    capabilities: CapabilitySet
    approved_by: str
    approved_at: str  # RFC 3339, UTC
    reason: str
    versions: str | None = None  # cargo version requirement; None = every version
    reviewed: str | None = None  # the version whose scan the approver looked at
    _req: VersionReq | None = field(default=None, compare=False, repr=False)

    def covers(self, version: Version) -> bool:
        return self._req is None or self._req.matches(version)


def make_approval(
    caps: AbstractSet[Capability],
    by: str,
    reason: str,
    when: datetime,
    versions: str | None = None,
    reviewed: str | None = None,
) -> Approval:
    """An Approval with its version requirement parsed (ValueError if it is not cargo's)."""
    req = VersionReq.parse(versions) if versions is not None else None
    stamp = when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return Approval(frozenset(caps), by, stamp, reason, versions, reviewed, req)


@dataclass(frozen=True)
class Revocation:
    """A crate whose approvals were all revoked: known, and held until approved again."""

    revoked_by: str
    revoked_at: str  # RFC 3339, UTC
    reason: str


@dataclass(frozen=True)
class CapabilityLock:
    crates: Mapping[str, tuple[Approval, ...]] = field(default_factory=lambda: MappingProxyType({}))
    revoked: Mapping[str, Revocation] = field(default_factory=lambda: MappingProxyType({}))

    # -- queries (pure) ----------------------------------------------------------------------

    def _key(self, name: str) -> str | None:
        # crates.io treats `-`/`_` and case as the same name: so does the lock, or an
        # approval could be dodged (or duplicated) by spelling.
        wanted = canonical_name(name)
        return next((k for k in self.crates if canonical_name(k) == wanted), None)

    def revocation(self, name: str) -> Revocation | None:
        wanted = canonical_name(name)
        return next((r for k, r in self.revoked.items() if canonical_name(k) == wanted), None)

    def approved_for(self, name: str, version: str) -> CapabilitySet | None:
        """Capabilities approved for this version; None if the crate is not in the lock (a
        revoked crate is in it, with nothing approved)."""
        key = self._key(name)
        if key is None:
            return frozenset() if self.revocation(name) is not None else None
        v = Version.parse(version)
        caps: set[Capability] = set()
        for approval in self.crates[key]:
            if approval.covers(v):
                caps |= approval.capabilities
        return frozenset(caps)

    def reviewer(self, name: str, version: str | None = None) -> str | None:
        """Who approved this crate after looking at it: a person, never trust-on-first-use.
        With `version`, only an approval made for that very version (`reviewed`) counts: a
        reviewed crate's next release has not been looked at yet."""
        key = self._key(name)
        for approval in self.crates.get(key, ()) if key is not None else ():
            if approval.approved_by == TOFU_APPROVER:
                continue
            if version is None or approval.reviewed == version:
                return approval.approved_by
        return None

    def approvals(self, name: str) -> tuple[Approval, ...]:
        key = self._key(name)
        return self.crates.get(key, ()) if key is not None else ()

    def reviewed_versions(self, name: str) -> list[str]:
        """The versions whose scans the crate's approvals were made from."""
        key = self._key(name)
        approvals = self.crates.get(key, ()) if key is not None else ()
        return [a.reviewed for a in approvals if a.reviewed is not None]

    # -- changes (pure: each returns a new lock) -----------------------------------------------

    def with_approval(
        self,
        name: str,
        version_req: str | None,
        caps: AbstractSet[Capability],
        by: str,
        reason: str,
        when: datetime,
        reviewed: str | None = None,
    ) -> CapabilityLock:
        """Add an approval; one for the same range is widened (old caps + new) and re-signed.
        A revoked crate approved again loses its tombstone."""
        new = make_approval(caps, by, reason, when, version_req, reviewed)
        key = self._key(name) or validate_name(name)
        kept: list[Approval] = []
        for old in self.crates.get(key, ()):
            if old.versions == version_req:
                new = replace(new, capabilities=new.capabilities | old.capabilities)
            else:
                kept.append(old)
        wanted = canonical_name(name)
        revoked = {k: r for k, r in self.revoked.items() if canonical_name(k) != wanted}
        return self._with(key, (*kept, new), revoked)

    def without(
        self,
        name: str,
        version_req: str | None = None,
        caps: AbstractSet[Capability] | None = None,
        *,
        revoked: Revocation | None = None,
    ) -> CapabilityLock:
        """Revoke: the whole crate, one range's approval, or some capabilities of either.
        With `revoked`, a crate left with no approvals keeps that tombstone: it stays held
        until approved again instead of counting as never seen."""
        key = self._key(name)
        if key is None:
            if revoked is None or self.revocation(name) is not None:
                return self
            # Known only from trust-on-first-use records: the tombstone still holds it.
            return self._with(validate_name(name), (), {**self.revoked, name: revoked})
        kept: list[Approval] = []
        for old in self.crates[key]:
            if version_req is not None and old.versions != version_req:
                kept.append(old)
            elif caps is not None and old.capabilities - caps:
                kept.append(replace(old, capabilities=old.capabilities - caps))
        tombstones = dict(self.revoked)
        if not kept and revoked is not None:
            tombstones[key] = revoked
        return self._with(key, tuple(kept), tombstones)

    def _with(
        self,
        key: str,
        approvals: tuple[Approval, ...],
        revoked: Mapping[str, Revocation] | None = None,
    ) -> CapabilityLock:
        crates = {k: v for k, v in self.crates.items() if k != key}
        if approvals:
            crates[key] = approvals
        tombstones = dict(sorted((self.revoked if revoked is None else revoked).items()))
        return CapabilityLock(
            MappingProxyType(dict(sorted(crates.items()))), MappingProxyType(tombstones)
        )

    # -- file format (reading and writing: mirror.sources.capability_lockfile) -----------------

    def render(self) -> str:
        out = [_HEADER, f"version: {LOCK_FORMAT}", "crates:" + ("" if self.crates else " {}")]
        out += self._render_crates()
        if self.revoked:
            out.append("revoked:")
            for name, r in self.revoked.items():
                out.append(f"  {name}:")
                out.append(f"    revoked_by: {json.dumps(r.revoked_by)}")
                out.append(f"    revoked_at: {json.dumps(r.revoked_at)}")
                out.append(f"    reason: {json.dumps(r.reason)}")
        return "\n".join(out) + "\n"

    def _render_crates(self) -> list[str]:
        out = []
        for name, approvals in self.crates.items():
            out.append(f"  {name}:")
            for a in approvals:
                caps = ", ".join(c.value for c in Capability if c in a.capabilities)
                out.append(f"    - capabilities: [{caps}]")
                if a.versions is not None:
                    out.append(f"      versions: {json.dumps(a.versions)}")
                out.append(f"      approved_by: {json.dumps(a.approved_by)}")
                out.append(f"      approved_at: {json.dumps(a.approved_at)}")
                out.append(f"      reason: {json.dumps(a.reason)}")
                if a.reviewed is not None:
                    out.append(f"      reviewed: {json.dumps(a.reviewed)}")
        return out


def merged(reviewed: CapabilityLock, recorded: CapabilityLock) -> CapabilityLock:
    """The lock the server decides by: people's approvals plus trust-on-first-use records,
    except for crates people revoked (their records no longer count)."""
    crates = {k: tuple(v) for k, v in reviewed.crates.items()}
    for name, approvals in recorded.crates.items():
        if reviewed.revocation(name) is not None:
            continue
        key = reviewed._key(name) or name
        crates[key] = (*crates.get(key, ()), *approvals)
    return CapabilityLock(MappingProxyType(dict(sorted(crates.items()))), reviewed.revoked)


def revocation(by: str, reason: str, when: datetime) -> Revocation:
    return Revocation(by, when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), reason)


def record_first_seen(
    lock: CapabilityLock, report: CapabilityReport, when: datetime
) -> CapabilityLock:
    """What the caller does with a `{"record": True}` decision (trust-on-first-use)."""
    return lock.with_approval(
        report.name,
        None,
        report.capability_set,
        TOFU_APPROVER,
        f"first seen as {report.name} {report.version}",
        when,
        reviewed=report.version,
    )


def decide_capabilities(
    report: CapabilityReport, lock: CapabilityLock, rule: CapabilityRule
) -> Decision:
    """Compare a version's capabilities with what the lock approves for it."""
    name, version = report.name, report.version
    approved = lock.approved_for(name, version)
    if approved is None and rule.first_seen == "trust":
        caps = ", ".join(c.value for c in report.capabilities) or "none"
        return Decision(
            Action.ALLOW,
            RULE,
            f"{name} is new to the capability lock; trusted on first use ({caps})",
            {"record": True, "capabilities": [c.value for c in report.capabilities]},
        )
    added = unapproved(report, approved)
    if not added:
        return Decision.allow(RULE, f"{name} {version} uses only approved capabilities")
    command = approve_command(name, version, frozenset(added), rule.command_flags)
    details: dict[str, Any] = {
        "added": {c.value: [_evidence_json(e) for e in ev] for c, ev in added.items()},
        "approve": command,
    }
    if approved is None:
        reason = f"{name} {version} is not in the capability lock and needs approval"
    elif not approved and lock.revocation(name) is not None:
        reason = f"{name} {version}: its approvals were revoked; it adds: {describe(added)}"
    else:
        reason = f"{name} {version} adds: {describe(added)}"
    # The command is in the details (`approve`); the 403 text adds it once (`explain`).
    return Decision.matched(rule.mode, RULE, reason, details)


def unapproved(
    report: CapabilityReport, approved: frozenset[Capability] | None
) -> dict[Capability, tuple[Evidence, ...]]:
    """What the version uses beyond what the lock approves (all of it when the lock has no
    entry), with the scan's evidence."""
    return {c: ev for c, ev in report.capabilities.items() if approved is None or c not in approved}


def describe(caps: Mapping[Capability, tuple[Evidence, ...]]) -> str:
    """`build_script (build.rs:1), process (build.rs:12 std::process::Command)`."""
    parts = []
    for cap, evidence in caps.items():
        if not evidence:
            parts.append(cap.value)
            continue
        first = evidence[0]  # its file and item are the crate's text: printable
        item = f" {printable(first.item)}" if first.item != first.file else ""
        parts.append(f"{cap.value} ({printable(first.file)}:{first.line}{item})")
    return ", ".join(parts)


def approve_command(name: str, version: str, caps: CapabilitySet, flags: str = "") -> str:
    listed = ",".join(c.value for c in Capability if c in caps)
    return f'crate-mirror approve {name}@{version} --caps {listed} --reason "..."{flags}'


def _evidence_json(e: Evidence) -> dict[str, Any]:
    return {"file": e.file, "line": e.line, "item": e.item}


# -- file format ---------------------------------------------------------------------------------

_HEADER = """\
# Capability lock: what each crate may do, approved by a human. Reviewed like code.
# Written by `crate-mirror approve` / `crate-mirror revoke` (comments here are not kept).
# Per crate, a list of approvals; a version gets the union of the approvals covering it.
#   capabilities: build_script, proc_macro, links, ffi, unsafe, net, fs, process, env,
#                 include_outside, binary
#   versions:     optional cargo requirement (">=1.0, <2"); absent = every version
#   approved_by, approved_at (RFC 3339), reason: who, when, why; reviewed: version scanned
# `revoked:` lists crates whose approvals were revoked: held until approved again."""
