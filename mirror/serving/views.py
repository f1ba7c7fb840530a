"""What is derived from one index file's content, computed once per content version.

An `IndexEntry` (mirror.serving.index_cache) carries `DerivedViews`; they are cleared when the
content changes or is revalidated (time-dependent rules such as release age are re-judged),
never per request. Each view remembers the decision generation it was computed under.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mirror.index import IndexLine
from mirror.policy.decision import Action, Decision
from mirror.policy.evidence import CrateHistory, NameFacts, VersionFacts
from mirror.policy.risk import Assessment

# (policy generation, capability lock generation, scans made): a view is current while the
# first two are unchanged and no scan made since is of its own crate (mirror.serving.gate).
Generation = tuple[int, int, int]


@dataclass(frozen=True)
class ServedIndex:
    """An index file exactly as we serve it, computed once per content and policy version."""

    body: bytes
    etag: str
    hidden: Mapping[str, Decision]  # version -> the decision that hid it
    summary: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Judged:
    assessment: Assessment
    decision: Decision


@dataclass(frozen=True)
class RiskView:
    """What the malicious-crate rule made of one index file's content."""

    name: NameFacts
    history: CrateHistory
    newest: IndexLine | None  # the release cargo resolves `*` to
    crate: Judged  # the crate as a whole
    versions: Mapping[str, Judged]  # each version there was evidence about
    facts: Mapping[str, VersionFacts] = field(default_factory=dict)
    recheck_at: float | None = None  # unix time: an age signal changes, judge again

    def current(self, now: float) -> bool:
        return self.recheck_at is None or now < self.recheck_at

    def holds_back(self) -> dict[str, Decision]:
        """Versions to hide (quarantine, block) or to record as would-block (warn)."""
        return {
            v: j.decision for v, j in self.versions.items() if j.decision.action is not Action.ALLOW
        }


@dataclass(slots=True)
class DerivedViews:
    # The full view (downloads, connected mirrors) and the offline one (only crates we hold)
    # are kept side by side: the index route asks for one and the download route the other.
    full: tuple[Generation, ServedIndex] | None = None
    offline: tuple[Generation, ServedIndex] | None = None
    # Scanning the newest versions of a locked crate before anyone sees them (once per
    # content); requests arriving meanwhile wait for it.
    scan_ahead: asyncio.Future[None] | None = None
    # The malicious-crate rule's judgement of this content (mirror.serving.evidence), and the
    # gathering of its evidence while it runs (requests arriving meanwhile wait for it).
    risk: tuple[Generation, RiskView | None] | None = None
    risk_pending: asyncio.Future[RiskView | None] | None = None
    # Warnings already on the record for this content (version, rule): a dry run is recorded
    # once, not every time a view is recomputed.
    warned: set[tuple[str, str]] = field(default_factory=set)

    def clear(self, *, keep_risk: bool = False) -> None:
        """Forget what was derived. `keep_risk`: the content is unchanged (a revalidation):
        the risk judgement stays, it expires by itself when an age signal does."""
        self.full = self.offline = self.scan_ahead = None
        if not keep_risk:
            self.risk = self.risk_pending = None
            self.warned = set()
