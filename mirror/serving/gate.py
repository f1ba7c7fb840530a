"""Where decisions meet requests: run the pure policy, memoize it, explain blocks, audit all.

The policy engine and the capability lock are pure; the gate holds their current versions
(swapped atomically on reload), keeps their verdicts per index content (`DerivedViews`) and per
name and day, and turns a blocking Decision into a `Blocked` error whose text cargo will print.
It never fetches anything: the core (mirror.serving.core) runs the steps and asks it to judge.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from mirror import metrics
from mirror.audit import AuditEvent, AuditSink
from mirror.errors import Blocked
from mirror.index import IndexFile, IndexLine, etag_of
from mirror.policy.capability_lock import PENDING_SCAN
from mirror.policy.decision import Action, Decision
from mirror.policy.engine import PolicyEngine, explain
from mirror.serving.downloads import CrateFile
from mirror.serving.index_cache import IndexEntry
from mirror.serving.views import Generation, ServedIndex

log = structlog.get_logger("mirror.gate")
MAX_MEMO = 100_000  # name decisions remembered before the memo is reset


@dataclass(slots=True)  # not frozen: frozen init costs a microsecond on every request
class Request:
    request_id: str
    client: str | None
    route: str
    crate: str
    version: str | None = None


class CapabilityCheck(Protocol):
    """The capability lock as the gate and the core see it (mirror.serving.capability_guard)."""

    @property
    def generation(self) -> int:
        """Changes whenever a verdict may have changed."""
        ...

    def known_verdicts(self, index: IndexFile) -> Mapping[str, Decision]: ...

    async def decide(self, line: IndexLine, crate: CrateFile) -> Decision: ...

    async def scan_ahead(
        self, entry: IndexEntry, fetch: Callable[[IndexLine], Awaitable[CrateFile]]
    ) -> None: ...


class Gate:
    def __init__(
        self,
        audit: AuditSink,
        engine: PolicyEngine | None = None,
        capabilities: CapabilityCheck | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.audit = audit
        self.capabilities = capabilities
        # Called with (crate name, body) whenever a new served view exists (TUF publishing).
        self.on_served: Callable[[str, bytes], None] | None = None
        self._clock = clock
        self._engine = engine
        self._generation = 0
        self._names: dict[str, Decision] = {}
        self._today = dt.date.min
        self._day_ends = 0.0  # unix time the memo's day ends (allow/deny entries expire by day)

    # -- policy state -------------------------------------------------------------------------

    @property
    def engine(self) -> PolicyEngine | None:
        return self._engine

    def replace_policy(
        self, engine: PolicyEngine | None, capabilities: CapabilityCheck | None
    ) -> None:
        """Swap in a newly loaded policy and capability lock together; every memoized verdict
        is recomputed lazily."""
        self._engine = engine
        self.capabilities = capabilities
        self._generation += 1
        self._names.clear()

    @property
    def generation(self) -> Generation:
        caps = self.capabilities.generation if self.capabilities is not None else 0
        return (self._generation, caps)

    @property
    def policy_digest(self) -> str | None:
        return self._engine.policy.digest if self._engine is not None else None

    # -- name rules ---------------------------------------------------------------------------

    def check_name(self, req: Request) -> None:
        if self._engine is None:
            return
        now = self._clock()
        if now >= self._day_ends or len(self._names) > MAX_MEMO:
            self._new_day(now)
        decision = self._names.get(req.crate)
        if decision is None:
            decision = self._engine.decide_name(req.crate, self._today)
            self._names[req.crate] = decision
        self._enforce(req, decision)

    def quietly_allowed(self, crate: str) -> bool:
        """Whether `crate`'s name decision is a plain allow: nothing to audit per request."""
        if self._engine is None:
            return True
        decision = self._names.get(crate)
        return (
            decision is not None
            and decision.action is Action.ALLOW
            and "near_name" not in decision.details
        )

    def still_serves(self, entry: IndexEntry, served: ServedIndex, *, offline: bool) -> bool:
        """Whether `served_index` would still return `served` (and name verdicts still hold)."""
        memo = entry.views.offline if offline else entry.views.full
        return (
            memo is not None
            and memo[1] is served
            and memo[0] == self.generation
            and (self._engine is None or self._clock() < self._day_ends)
        )

    def _new_day(self, now: float) -> None:
        self._names.clear()
        self._today = dt.datetime.fromtimestamp(now, dt.UTC).date()
        midnight = dt.datetime.combine(self._today + dt.timedelta(days=1), dt.time(), dt.UTC)
        self._day_ends = midnight.timestamp()

    # -- version rules ------------------------------------------------------------------------

    def served_index(
        self, entry: IndexEntry, is_cached: Callable[[str], bool] | None = None
    ) -> ServedIndex:
        """The filtered index for this entry; `is_cached` (offline) hides crates we lack."""
        views = entry.views
        memo = views.offline if is_cached is not None else views.full
        if memo is not None and memo[0] == self.generation:
            return memo[1]
        served = self._filter(entry.index, is_cached)
        if is_cached is not None:
            views.offline = (self.generation, served)
        else:
            views.full = (self.generation, served)
        if self.on_served is not None:
            self.on_served(entry.name, served.body)
        return served

    def _filter(self, index: IndexFile, is_cached: Callable[[str], bool] | None) -> ServedIndex:
        hidden: dict[str, Decision] = {}
        kept = index
        if self._engine is not None:
            extra = self.capabilities.known_verdicts(index) if self.capabilities else {}
            now = dt.datetime.fromtimestamp(self._clock(), dt.UTC)
            filtered = self._engine.filter_index(index, now, extra)
            kept, hidden = filtered.index, dict(filtered.hidden)
        if is_cached is not None:
            # Offline: cargo must only resolve to versions it can actually download.
            missing = {line.vers for line in kept.lines if not is_cached(line.cksum)}
            if missing:
                kept = kept.keep(lambda line: line.vers not in missing)
        summary: dict[str, Any] = {"versions": len(index.lines), "served": len(kept.lines)}
        if hidden:
            summary["hidden"] = {v: d.rule for v, d in hidden.items()}
        return ServedIndex(kept.raw, etag_of(kept.raw), hidden, summary)

    def check_version(self, req: Request, entry: IndexEntry, line: IndexLine) -> ServedIndex:
        """Enforce the version rules on `line`; returns the full view they were read from."""
        served = self.served_index(entry)
        decision = served.hidden.get(line.vers)
        # Hidden only until its scan is known: the download scans it and decides then.
        if decision is not None and not decision.details.get(PENDING_SCAN):
            self._enforce(req, decision)
        return served

    # -- capabilities -------------------------------------------------------------------------

    async def check_capabilities(self, req: Request, line: IndexLine, crate: CrateFile) -> bool:
        """Enforce the capability lock; True when the verdict is a plain allow."""
        if self.capabilities is None:
            return True
        decision = await self.capabilities.decide(line, crate)
        self._enforce(req, decision)
        return decision.action is Action.ALLOW

    # -- outcomes -----------------------------------------------------------------------------

    def allowed(self, req: Request, details: Mapping[str, Any]) -> None:
        self._record(req, Decision(Action.ALLOW, "default", "allowed", dict(details)))

    def failed(self, req: Request, rule: str, reason: str) -> None:
        """A verification failure (TUF, checksum, hostile archive): audited as a block."""
        self._record(req, Decision(Action.BLOCK, rule, reason))

    def _enforce(self, req: Request, decision: Decision) -> None:
        if decision.action is Action.ALLOW:
            if "near_name" in decision.details:
                self._record(req, decision)  # allowed by an allow entry: still goes to the feed
            return
        self._record(req, decision)
        if decision.action is Action.BLOCK:
            policy_path = self._engine.policy.path if self._engine is not None else None
            raise Blocked(decision.rule, explain(decision, policy_path, req.request_id))

    def _record(self, req: Request, decision: Decision) -> None:
        if decision.rule != "default":  # plain allows are already counted per request
            metrics.decision_counter(decision.action.value, decision.rule).inc()
        details = dict(decision.details)
        cksum = details.pop("cksum", None)
        self.audit.record(
            AuditEvent(
                action=decision.action.value,
                rule=decision.rule,
                reason=decision.reason,
                route=req.route,
                crate=req.crate,
                version=req.version,
                request_id=req.request_id,
                client=req.client,
                policy_digest=self.policy_digest,
                cksum=cksum if isinstance(cksum, str) else None,
                details=details,
            )
        )
