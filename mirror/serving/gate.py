"""Where decisions meet requests: run the pure policy, memoize it, explain blocks, audit all.

The policy engine and the capability lock are pure; the gate holds their current versions
(swapped atomically on reload), keeps their verdicts per index content (`DerivedViews`) and per
name and day, and turns a blocking Decision into a `Blocked` error whose text cargo will print.
It never fetches anything: the core (mirror.serving.core) runs the steps and asks it to judge.
"""

from __future__ import annotations

import asyncio
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
from mirror.policy.capability_lock import PENDING_SCAN, RECORDING
from mirror.policy.decision import Action, Decision
from mirror.policy.engine import PolicyEngine, explain, strongest
from mirror.request_ids import next_request_id
from mirror.serving.downloads import CrateFile
from mirror.serving.index_cache import IndexEntry
from mirror.serving.views import Generation, RiskView, ServedIndex

log = structlog.get_logger("mirror.gate")
MAX_MEMO = 100_000  # name decisions remembered before the memo is reset


class _Abandoned(Exception):
    """The request gathering a risk view was cancelled before it finished."""


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
        """Changes whenever any verdict may have changed."""
        ...

    @property
    def scans_made(self) -> int:
        """Moves when a scan is made: a mark for `scanned_since`."""
        ...

    def scanned_since(self, mark: int, index: IndexFile) -> bool:
        """Whether a verdict about `index` may have changed with a scan made since `mark`."""
        ...

    def known_verdicts(self, index: IndexFile) -> Mapping[str, Decision]: ...

    async def decide(self, line: IndexLine, crate: CrateFile) -> Decision: ...

    async def settle(self) -> None:
        """Wait until the first sightings answered so far are recorded."""
        ...

    async def scan_ahead(
        self, entry: IndexEntry, fetch: Callable[[IndexLine], Awaitable[CrateFile]]
    ) -> None: ...

    def reviewer(self, name: str, version: str | None = None) -> str | None: ...

    def approve_command(self, name: str, version: str) -> str: ...


# Gathers the malicious-crate rule's evidence for an index entry and judges it
# (mirror.serving.evidence.EvidenceGatherer.view): (entry, engine, reviewer) -> view.
GatherRisk = Callable[
    [IndexEntry, PolicyEngine, Callable[[str, str | None], str | None]],
    Awaitable[RiskView | None],
]


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
        # Which view /index/ serves, so only that one is signed: offline, the view without
        # versions we cannot serve (the download route's full view must not replace it).
        self.serves_offline_view = False
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

    @property
    def scans_crates(self) -> bool:
        """Whether the policy's verdicts read crates' contents (capabilities, or risk)."""
        engine = self._engine
        return self.capabilities is not None or (engine is not None and engine.judges_risk)

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
        caps = self.capabilities
        if caps is None:
            return (self._generation, 0, 0)
        return (self._generation, caps.generation, caps.scans_made)

    def _holds(self, stamp: Generation, entry: IndexEntry) -> Generation | None:
        """The current generation if a view of `entry` made under `stamp` still holds (the
        caller stamps the view with it), else None. Only the scans moved: the view holds
        unless one of them is of a version of this very crate."""
        now = self.generation
        if stamp == now:
            return stamp
        caps = self.capabilities
        if caps is None or stamp[:2] != now[:2] or caps.scanned_since(stamp[2], entry.index):
            return None
        return now

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
        if memo is None or memo[1] is not served:
            return False
        now = self.generation  # once: every warm hit the front door repeats asks this
        if memo[0] != now and not self._served_holds(entry, memo, offline=offline):
            return False
        return (self._engine is None or self._clock() < self._day_ends) and self._risk_current(
            entry, now
        )

    def _served_holds(
        self, entry: IndexEntry, memo: tuple[Generation, ServedIndex], *, offline: bool
    ) -> bool:
        stamp = self._holds(memo[0], entry)
        if stamp is None:
            return False
        if stamp is not memo[0]:
            if offline:
                entry.views.offline = (stamp, memo[1])
            else:
                entry.views.full = (stamp, memo[1])
        return True

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
        offline = is_cached is not None
        memo = views.offline if offline else views.full
        if memo is not None and self._served_holds(entry, memo, offline=offline):
            return memo[1]
        served = self._filter(entry, is_cached)
        if offline:
            views.offline = (self.generation, served)
        else:
            views.full = (self.generation, served)
        if self.on_served is not None and (is_cached is not None) == self.serves_offline_view:
            self.on_served(entry.name, served.body)
        return served

    def _filter(self, entry: IndexEntry, is_cached: Callable[[str], bool] | None) -> ServedIndex:
        index = entry.index
        hidden: dict[str, Decision] = {}
        kept = index
        if self._engine is not None:
            extra = dict(self.capabilities.known_verdicts(index)) if self.capabilities else {}
            for vers, decision in self._risk_versions(entry).items():
                extra[vers] = strongest([extra.get(vers), decision]) or decision
            now = dt.datetime.fromtimestamp(self._clock(), dt.UTC)
            filtered = self._engine.filter_index(index, now, extra)
            kept, hidden = filtered.index, dict(filtered.hidden)
            # Dry runs are on the record: once per content, not per request or view.
            for vers, decision in filtered.warned.items():
                if (vers, decision.rule) not in entry.views.warned:
                    entry.views.warned.add((vers, decision.rule))
                    self._record(self._view_request(entry.name, vers), decision)
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

    # -- malicious crates (rules.risk) --------------------------------------------------------

    async def risk_view(self, entry: IndexEntry, gather: GatherRisk) -> RiskView | None:
        """The rule's judgement of this content, gathered once (requests arriving meanwhile
        wait for it) and kept until the content, the policy or the lock changes, or one of
        its age signals expires."""
        engine = self._engine
        if engine is None or not engine.judges_risk:
            return None
        views = entry.views
        while True:
            memo = views.risk
            if memo is not None and (stamp := self._holds(memo[0], entry)) is not None:
                view = memo[1]
                if view is None or view.current(self._clock()):
                    if stamp is not memo[0]:
                        views.risk = (stamp, view)
                    return view
            pending = views.risk_pending
            if pending is None:
                return await self._gather_risk(entry, engine, gather)
            try:
                return await asyncio.shield(pending)
            except _Abandoned:
                continue  # the request gathering it went away: gather it here

    async def _gather_risk(
        self, entry: IndexEntry, engine: PolicyEngine, gather: GatherRisk
    ) -> RiskView | None:
        """Gather in this request, not in a task: a task's start and end each waited for a
        turn of the event loop, which a cold build keeps busy (0.5-0.7 ms per index file)."""
        views = entry.views
        generation = self.generation
        done: asyncio.Future[RiskView | None] = asyncio.get_running_loop().create_future()
        views.risk_pending = done
        try:
            view = await gather(entry, engine, self.reviewer)
        except BaseException as e:
            if views.risk_pending is done:
                views.risk_pending = None  # a bug must not stick to this index: retried
            # The waiters share a failure, but not this request's cancellation.
            done.set_exception(e if isinstance(e, Exception) else _Abandoned())
            done.exception()  # retrieved: only the waiters re-raise it
            raise
        if views.risk_pending is done:  # else the content changed meanwhile
            views.risk_pending = None
            views.risk = (generation, view)
            views.full = views.offline = None  # the served views depend on it
            if view is not None:
                self._record_view(entry.name, view)
        done.set_result(view)
        return view

    def check_crate(self, req: Request, view: RiskView | None) -> None:
        """Enforce the crate-level judgement: a stop is refused (and audited) per request;
        warnings and near-names were recorded once, when the view was made."""
        if view is None:
            return
        decision = view.crate.decision
        if decision.blocks:
            self._enforce(req, decision, view.newest.vers if view.newest else None)

    async def check_risk_download(
        self,
        req: Request,
        entry: IndexEntry,
        line: IndexLine,
        facts: Callable[[], Awaitable[Decision | None]],
    ) -> None:
        """A version the view had no evidence about, judged now that its crate is scanned
        (`facts` gathers and decides). A stop refuses this download and drops the entry's
        judgement, so the next index view hides the version too."""
        view = entry.views.risk[1] if entry.views.risk is not None else None
        if view is None or line.vers in view.versions:
            return
        decision = await facts()
        if decision is None or decision.action is Action.ALLOW:
            return
        if decision.blocks:
            entry.views.risk = None
            entry.views.full = entry.views.offline = None
        self._enforce(req, decision, line.vers)

    def reviewer(self, name: str, version: str | None) -> str | None:
        """Who approved this crate (or version) after review, from the capability lock."""
        return self.capabilities.reviewer(name, version) if self.capabilities else None

    def _risk_current(self, entry: IndexEntry, now: Generation) -> bool:
        memo = entry.views.risk
        if memo is None or memo[1] is None:
            return True
        if memo[0] == now:
            return memo[1].current(self._clock())
        stamp = self._holds(memo[0], entry)
        if stamp is None or not memo[1].current(self._clock()):
            return False
        if stamp is not memo[0]:
            entry.views.risk = (stamp, memo[1])
        return True

    def _risk_versions(self, entry: IndexEntry) -> Mapping[str, Decision]:
        """The versions the latest judgement holds back. A judgement made under an older
        generation still counts until the next request replaces it: fail closed."""
        memo = entry.views.risk
        if memo is None or memo[1] is None:
            return {}
        return memo[1].holds_back()

    def _record_view(self, name: str, view: RiskView) -> None:
        """What a new judgement says that is worth keeping, once: a look-alike let through or
        held (the near-name feed), a warning, a version held back. (A version's warning is
        recorded with the served view's other dry runs, once per content.)"""
        crate = view.crate.decision
        exempt = crate.rule in ("allow", "approved")
        if crate.action is not Action.ALLOW or "near_name" in crate.details or exempt:
            self._record(self._view_request(name, None), crate)
        for vers, judged in view.versions.items():
            if judged.decision.blocks:
                self._record(self._view_request(name, vers), judged.decision)

    @staticmethod
    def _view_request(name: str, version: str | None) -> Request:
        # Judged for the index file's content, not for one client's request.
        return Request(next_request_id(), None, "index", name, version)

    # -- capabilities -------------------------------------------------------------------------

    async def check_capabilities(self, req: Request, line: IndexLine, crate: CrateFile) -> bool:
        """Enforce the capability lock; True when the verdict is a plain allow."""
        if self.capabilities is None:
            return True
        decision = await self.capabilities.decide(line, crate)
        self._enforce(req, decision)
        # A first sighting still being recorded: decided again next time, not repeated.
        return decision.action is Action.ALLOW and not decision.details.get(RECORDING)

    # -- outcomes -----------------------------------------------------------------------------

    def allowed(self, req: Request, details: Mapping[str, Any]) -> None:
        self._record(req, Decision(Action.ALLOW, "default", "allowed", dict(details)))

    def failed(self, req: Request, rule: str, reason: str) -> None:
        """A verification failure (TUF, checksum, hostile archive): audited as a block."""
        self._record(req, Decision(Action.BLOCK, rule, reason))

    def _enforce(self, req: Request, decision: Decision, version: str | None = None) -> None:
        if decision.action is Action.ALLOW:
            if "near_name" in decision.details:
                self._record(req, decision)  # allowed by an allow entry: still goes to the feed
            return
        self._record(req, decision)
        if decision.blocks:
            policy_path = self._engine.policy.path if self._engine is not None else None
            version = version or req.version
            # A risk stop is approved in the capability lock, which only counts where it is
            # read (the capabilities rule is on). Other rules carry their own way out.
            approve = (
                self.capabilities.approve_command(req.crate, version)
                if decision.rule == "risk" and self.capabilities is not None and version
                else None
            )
            text = explain(decision, policy_path, req.request_id, approve)
            raise Blocked(decision.rule, text)

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
