"""Policy reload on SIGHUP or file change; an invalid new policy keeps the old one.

Everything is loaded and checked first (policy, corpus, advisories, capability lock); only a
complete new set replaces the old, in one step, so no request ever sees half of each.
"""

from __future__ import annotations

import asyncio
import datetime

import structlog

from mirror import heap
from mirror.audit import AuditEvent, AuditSink
from mirror.config import Settings
from mirror.errors import ConfigError
from mirror.policy.engine import PolicyEngine
from mirror.serving.capability_guard import CapabilityGuard
from mirror.serving.gate import Gate
from mirror.serving.lock_sync import LockSync
from mirror.serving.scans import Scans
from mirror.sources.policy_files import PolicyFiles

log = structlog.get_logger("mirror.reload")
POLICY_POLL_SECONDS = 2.0  # how often the policy file's mtime is checked for changes


class PolicyReloader:
    def __init__(
        self, files: PolicyFiles, gate: Gate, scans: Scans, audit: AuditSink, settings: Settings
    ) -> None:
        self._files = files
        self._settings = settings
        self._gate = gate
        self._scans = scans
        self._audit = audit
        # Replicas: keeps the capability lock in step with the others (mirror.serving.lock_sync)
        self.lock_sync: LockSync | None = None

        self.rejected: str | None = None  # the problems of the last rejected reload, if any

    @property
    def files(self) -> PolicyFiles:
        return self._files

    def now(self) -> None:
        """Reload at once (SIGHUP)."""
        self.reload("signal")

    async def watch(self) -> None:
        """Reload when a watched file changes; warn about entries expiring as days pass; with
        replicas, sync the capability lock through the bucket meanwhile."""
        sync = asyncio.ensure_future(self.lock_sync.run()) if self.lock_sync is not None else None
        try:
            await self._watch()
        finally:
            if sync is not None:
                sync.cancel()

    async def _watch(self) -> None:
        day = datetime.date.today()
        while True:
            await asyncio.sleep(POLICY_POLL_SECONDS)
            if self._files.changed():
                self.reload("file change")
            if datetime.date.today() != day:  # entries expire by day: say so when they do
                day = datetime.date.today()
                engine = self._gate.engine
                if engine is not None:
                    warn_expired(engine)

    def reload(self, trigger: str) -> None:
        try:
            engine = self._files.load()
            guard = CapabilityGuard.for_policy(
                self._files, self._scans, self._audit.record, self._settings
            )
        except ConfigError as e:
            log.error("policy.reload_rejected", trigger=trigger, problems=str(e))
            self.rejected = str(e)
            self._audit.record(
                AuditEvent(action="policy.reload_rejected", rule="policy", reason=str(e)[:2000])
            )
            return
        self._gate.replace_policy(engine, guard)
        heap.settle()  # the new policy's indexes out of full collections, the old ones freed
        self.rejected = None
        warn_expired(engine)
        log.info("policy.reloaded", trigger=trigger, digest=engine.policy.digest)
        self._audit.record(
            AuditEvent(
                action="policy.reload",
                rule="policy",
                reason=f"policy reloaded on {trigger}",
                policy_digest=engine.policy.digest,
            )
        )


def warn_expired(engine: PolicyEngine) -> None:
    """Expired allow/deny entries no longer apply; someone should renew or remove them."""
    today = datetime.datetime.now(datetime.UTC).date()
    for entry in engine.expired_entries(today):
        log.warning(
            "policy.entry_expired",
            entry=entry.field,
            line=entry.line,
            crate=str(entry.spec),
            expired=entry.expires.isoformat() if entry.expires else None,
            reason=entry.reason,
        )
