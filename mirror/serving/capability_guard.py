"""The capability lock at serving time: judge each crate by its scan, record first sightings.

The decision itself is pure (`mirror.policy.capability_lock.decide_capabilities`); this module
does the I/O around it: scan reports (mirror.serving.scans, once per sha256), the lock file
(updated under a file lock for trust-on-first-use) and, for crates already in the lock,
scanning new versions when their index file changes, so `cargo update` never resolves to a
version that would be refused. What it decides on its own (a first sighting, a version held
back ahead of time) goes to the audit callback it is given.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

import structlog

from mirror.audit import AuditEvent
from mirror.errors import MirrorError
from mirror.index import IndexFile, IndexLine
from mirror.policy.capability_lock import (
    CapabilityRule,
    decide_capabilities,
    record_first_seen,
)
from mirror.policy.decision import Action, Decision, Mode
from mirror.policy.schema import CapabilitiesRule
from mirror.policy.semver import Version
from mirror.scan.report import CapabilityReport
from mirror.serving.downloads import CrateFile
from mirror.serving.index_cache import IndexEntry
from mirror.serving.scans import Scans
from mirror.sources.capability_lockfile import load_lock, update_lock
from mirror.sources.policy_files import PolicyFiles

log = structlog.get_logger("mirror.capabilities")
SCAN_AHEAD = 3  # newest unscanned versions of a locked crate scanned when its index changes

Audit = Callable[[AuditEvent], None]
FetchCrate = Callable[[IndexLine], Awaitable[CrateFile]]


class CapabilityGuard:
    def __init__(
        self,
        lock_path: Path,
        rule: CapabilitiesRule,
        scans: Scans,
        audit: Audit,
        policy_digest: str | None = None,
    ) -> None:
        """Raises ConfigError for an invalid lock file (a reload then keeps the old guard)."""
        self.generation = 0  # bumped whenever a verdict may have changed
        self._lock = load_lock(lock_path)
        self._lock_path = lock_path
        self._rule = CapabilityRule(mode=rule.mode, first_seen=rule.first_seen.value)
        self._scans = scans
        self._audit = audit
        self._policy_digest = policy_digest  # of the policy this guard was built from

    @classmethod
    def for_policy(cls, files: PolicyFiles, scans: Scans, audit: Audit) -> CapabilityGuard | None:
        """The guard the policy last loaded by `files` asks for; None when the rule is off."""
        policy = files.policy
        assert policy is not None, "load the policy first"
        rule = policy.rules.capabilities
        if rule.mode is Mode.OFF:
            return None
        return cls(files.lock_path(policy), rule, scans, audit, policy.digest)

    # -- verdicts -----------------------------------------------------------------------------

    def reviewer(self, name: str, version: str | None = None) -> str | None:
        """Who approved this crate (any version), or this very version, after looking at it."""
        return self._lock.reviewer(name, version)

    @property
    def lock_path(self) -> Path:
        return self._lock_path

    def known_verdicts(self, index: IndexFile) -> Mapping[str, Decision]:
        """Versions of this index file that a known scan says must be held back."""
        out = {}
        for line in index.lines:
            report = self._scans.known(line.cksum)
            if report is not None:
                decision = self._decide(line, report)
                if decision.action is not Action.ALLOW:
                    out[line.vers] = decision
        return out

    async def decide(self, line: IndexLine, crate: CrateFile) -> Decision:
        report = await self._scans.report(line.cksum, crate.read)
        decision = self._decide(line, report)
        if decision.details.get("record"):
            await asyncio.to_thread(self._record_first_seen, line, report)
        elif decision.action is not Action.ALLOW:
            self.generation += 1  # newly known verdict: index views drop this version
        return decision

    def _decide(self, line: IndexLine, report: CapabilityReport) -> Decision:
        # Judge the crate by the name and version the index lists, never by what its own
        # Cargo.toml claims: a crate calling itself `serde` must not borrow serde's approvals.
        named = dataclasses.replace(report, name=line.name, version=line.vers)
        return decide_capabilities(named, self._lock, self._rule)

    def _record_first_seen(self, line: IndexLine, report: CapabilityReport) -> None:
        now = dt.datetime.now(dt.UTC)
        named = dataclasses.replace(report, name=line.name, version=line.vers)
        self._lock = update_lock(self._lock_path, lambda lock: record_first_seen(lock, named, now))
        self.generation += 1
        caps = sorted(c.value for c in report.capabilities)
        log.info("capabilities.first_seen", crate=line.name, version=line.vers, caps=caps)
        # A change to the lock, like `crate-mirror approve`: on the record.
        self._audit(
            AuditEvent(
                action="approve",
                rule="capabilities",
                reason=f"trust on first use: {line.name} {line.vers} recorded with "
                f"{', '.join(caps) or 'no capabilities'}",
                crate=line.name,
                version=line.vers,
                cksum=line.cksum,
                policy_digest=self._policy_digest,
                details={"capabilities": caps, "approved_by": "trust-on-first-use"},
            )
        )

    # -- scanning ahead -----------------------------------------------------------------------

    async def scan_ahead(self, entry: IndexEntry, fetch: FetchCrate) -> None:
        """Scan the newest unscanned versions of a crate the lock knows, before cargo sees them.

        Once per index content; requests arriving while the scan runs wait for it: none may
        see a new version before its capabilities are known. Without this, `cargo update`
        would lock a new version that the download then refuses; with it, a version that needs
        more than was approved is simply not in the index.
        """
        views = entry.views
        if views.scan_ahead is None:
            views.scan_ahead = asyncio.ensure_future(self._scan_newest(entry.index, fetch))
        try:
            await asyncio.shield(views.scan_ahead)
        except Exception:
            views.scan_ahead = None  # a bug must not stick to this index forever
            raise

    async def _scan_newest(self, index: IndexFile, fetch: FetchCrate) -> None:
        if not index.lines or self._lock.approved_for(index.lines[0].name, "0.0.0") is None:
            return  # not in the lock: trust-on-first-use or approval happens at download
        candidates = [
            line
            for line in index.lines
            if not line.yanked and self._scans.known(line.cksum) is None
        ]
        candidates.sort(key=lambda line: _version_key(line.vers), reverse=True)
        for line in candidates[:SCAN_AHEAD]:
            try:
                crate = await fetch(line)
                report = await self._scans.report(line.cksum, crate.read)
            except MirrorError as e:
                log.warning(
                    "capabilities.prescan_failed", crate=line.name, version=line.vers, error=str(e)
                )
                continue
            decision = self._decide(line, report)
            if decision.action is not Action.ALLOW:
                self.generation += 1
                self._audit(
                    AuditEvent(
                        action=decision.action.value,
                        rule=decision.rule,
                        reason=decision.reason,
                        route="index",
                        crate=line.name,
                        version=line.vers,
                        policy_digest=self._policy_digest,
                        cksum=line.cksum,
                        details=dict(decision.details),
                    )
                )


_LOWEST = Version.parse("0.0.0")


def _version_key(vers: str) -> tuple[int, Version]:
    try:
        return (1, Version.parse(vers))
    except ValueError:
        return (0, _LOWEST)
