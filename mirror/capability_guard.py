"""The capability lock at serving time: scan once per sha256, decide, record first sightings.

The decision itself is pure (`mirror.policy.capability_lock.decide_capabilities`); this module
does the I/O around it: the scan cache, the lock file (re-read on change, updated under a file
lock for trust-on-first-use) and, for crates already in the lock, scanning new versions when
their index file changes, so `cargo update` never resolves to a version that would be refused.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from mirror.audit import AuditEvent
from mirror.errors import MirrorError
from mirror.index import IndexFile, IndexLine
from mirror.policy.capability_lock import (
    CapabilityRule,
    decide_capabilities,
    record_first_seen,
)
from mirror.policy.decision import Action, Decision
from mirror.policy.schema import CapabilitiesRule
from mirror.policy.semver import Version
from mirror.scan.report import CapabilityReport
from mirror.serving.scans import Scans
from mirror.sources.capability_lockfile import load_lock, update_lock

if TYPE_CHECKING:
    from mirror.downloads import CrateFetcher
    from mirror.gate import Gate
    from mirror.store import Store

log = structlog.get_logger("mirror.capabilities")
SCAN_AHEAD = 3  # newest unscanned versions of a locked crate scanned when its index changes


class CapabilityGuard:
    def __init__(self, lock_path: Path, rule: CapabilitiesRule, store: Store, gate: Gate) -> None:
        self.generation = 0  # bumped whenever a verdict may have changed
        self._gate = gate
        self._scans = Scans(store)
        self.set_rule(rule, lock_path)

    def set_rule(self, rule: CapabilitiesRule, lock_path: Path) -> None:
        """(Re)load the lock; raises ConfigError for an invalid file (the caller keeps the old)."""
        lock = load_lock(lock_path)
        self._rule = CapabilityRule(mode=rule.mode, first_seen=rule.first_seen.value)
        self._lock_path = lock_path
        self._lock = lock
        self.generation += 1

    # -- verdicts -----------------------------------------------------------------------------

    def known_verdicts(self, index: IndexFile) -> Mapping[str, Decision]:
        """Versions of this index file that a known scan says must be held back."""
        out = {}
        for line in index.lines:
            report = self._known_report(line.cksum)
            if report is not None:
                decision = self._decide(line, report)
                if decision.action is not Action.ALLOW:
                    out[line.vers] = decision
        return out

    async def decide(self, line: IndexLine, path: Path) -> Decision:
        report = await self._report(line, path)
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
        self._gate.audit.record(
            AuditEvent(
                action="approve",
                rule="capabilities",
                reason=f"trust on first use: {line.name} {line.vers} recorded with "
                f"{', '.join(caps) or 'no capabilities'}",
                crate=line.name,
                version=line.vers,
                cksum=line.cksum,
                policy_digest=self._gate.policy_digest,
                details={"capabilities": caps, "approved_by": "trust-on-first-use"},
            )
        )

    # -- scanning -----------------------------------------------------------------------------

    def _known_report(self, cksum: str) -> CapabilityReport | None:
        return self._scans.known(cksum)

    async def _report(self, line: IndexLine, path: Path) -> CapabilityReport:
        return await self._scans.report(line.cksum, path.read_bytes)

    async def prescan(self, index: IndexFile, crates: CrateFetcher) -> None:
        """Scan the newest unscanned versions of a crate the lock knows, before cargo sees them.

        Without this, `cargo update` would lock a new version that the download then refuses;
        with it, a version that needs more than was approved is simply not in the index.
        """
        if not index.lines or self._lock.approved_for(index.lines[0].name, "0.0.0") is None:
            return  # not in the lock: trust-on-first-use or approval happens at download
        candidates = [
            line
            for line in index.lines
            if not line.yanked and self._known_report(line.cksum) is None
        ]
        candidates.sort(key=lambda line: _version_key(line.vers), reverse=True)
        for line in candidates[:SCAN_AHEAD]:
            try:
                path = await crates.ensure(line)
                report = await self._report(line, path)
            except MirrorError as e:
                log.warning(
                    "capabilities.prescan_failed", crate=line.name, version=line.vers, error=str(e)
                )
                continue
            decision = self._decide(line, report)
            if decision.action is not Action.ALLOW:
                self.generation += 1
                self._gate.audit.record(
                    AuditEvent(
                        action=decision.action.value,
                        rule=decision.rule,
                        reason=decision.reason,
                        route="index",
                        crate=line.name,
                        version=line.vers,
                        policy_digest=self._gate.policy_digest,
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
