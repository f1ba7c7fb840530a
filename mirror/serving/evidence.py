"""Gathering the evidence the malicious-crate rule weighs, and judging it once per content.

The rule itself is pure (mirror.policy.risk, through the engine); this module fetches what it
needs, through the same verified paths as serving: the crate's own index file (publish times,
versions), the scan of the versions worth scanning (the newest release of a new crate, and
releases younger than `young`: once per sha256, through mirror.serving.scans), and the index
files of dependencies a release adds (through the index cache, which cargo would ask next
anyway). Everything it could not get is named as missing evidence, never silently skipped.

The result, a `RiskView`, hangs off the index entry (mirror.serving.views) and is recomputed
only when the content changes, the policy or the capability lock changes, or an age signal in
it expires (`recheck_at`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

import structlog

from mirror.errors import MirrorError, NotFound
from mirror.index import IndexFile, IndexLine
from mirror.policy.decision import Decision
from mirror.policy.engine import PolicyEngine
from mirror.policy.evidence import (
    ContentFacts,
    CrateHistory,
    DependencyFacts,
    NameFacts,
    RunsAt,
    VersionFacts,
    added_dependencies,
)
from mirror.policy.risk import is_new
from mirror.policy.schema import RiskRule, ScanBeforeServing
from mirror.policy.semver import Version
from mirror.policy.versions import parse_pubtime
from mirror.scan.findings import context_of
from mirror.scan.report import CapabilityReport
from mirror.serving.downloads import CrateFetcher, CrateFile
from mirror.serving.index_cache import IndexCache, IndexEntry
from mirror.serving.scans import Scans
from mirror.serving.views import Judged, RiskView

log = structlog.get_logger("mirror.evidence")
MAX_DEPENDENCIES = 8  # added dependencies looked up per version
SCAN_TIMEOUT = 60.0  # seconds for one download + scan; then the scan counts as missing
DEPENDENCY_TIMEOUT = 15.0  # seconds for one dependency's index file
CONCURRENCY = 4  # downloads/lookups at once for one crate

Reviewer = Callable[[str, str | None], str | None]  # (crate, version) -> who approved it


class EvidenceGatherer:
    def __init__(
        self,
        indexes: IndexCache,
        crates: CrateFetcher,
        scans: Scans,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._indexes = indexes
        self._crates = crates
        self.scans = scans
        self._clock = clock

    async def view(
        self, entry: IndexEntry, engine: PolicyEngine, reviewer: Reviewer
    ) -> RiskView | None:
        """Gather and judge (None when the risk rule is off)."""
        if not engine.judges_risk:
            return None
        now = datetime.fromtimestamp(self._clock(), UTC)
        rule = engine.policy.rules.risk
        name = engine.name_facts(entry.name)
        history = CrateHistory.from_index(entry.index, stale=entry.stale_reason is not None)
        newest = newest_release(entry.index.lines)
        scan = set()
        if rule.scan is not ScanBeforeServing.NEVER:
            scan = {
                line.vers for line in self._worth_scanning(entry.index, name, history, rule, now)
            }
        about = [
            line
            for line in entry.index.lines
            if line.vers in scan or line is newest or self.scans.known(line.cksum) is not None
        ]
        limit = asyncio.Semaphore(CONCURRENCY)

        async def one(line: IndexLine) -> VersionFacts:
            async with limit:
                return await self.version_facts(
                    entry, line, engine, scan=line.vers in scan, first_seen=entry.first_seen
                )

        if len(about) == 1:  # most crates: no task, and no turns of a busy event loop
            found = [await one(about[0])]
        else:
            found = await asyncio.gather(*(one(line) for line in about))
        facts = {f.line.vers: f for f in found}
        judged = engine.decide_crate(
            name,
            history,
            facts.get(newest.vers) if newest is not None else None,
            now,
            reviewed_by=reviewer(entry.name, None),
        )
        assert judged is not None
        versions: dict[str, Judged] = {}
        for vers, vf in facts.items():
            result = engine.decide_risk_version(
                name, history, vf, now, reviewed_by=reviewer(entry.name, vers)
            )
            assert result is not None
            versions[vers] = Judged(*result)
        moments = [j.assessment.recheck_at for j in (Judged(*judged), *versions.values())]
        recheck = min((m.timestamp() for m in moments if m is not None), default=None)
        return RiskView(name, history, newest, Judged(*judged), versions, facts, recheck)

    async def judge_download(
        self,
        entry: IndexEntry,
        view: RiskView,
        line: IndexLine,
        crate: CrateFile,
        engine: PolicyEngine,
        reviewer: Reviewer,
    ) -> Decision | None:
        """A version judged at its download, now that its crate is here to scan."""
        report = await self.scans.report(line.cksum, crate.read)
        facts = await self.version_facts(
            entry, line, engine, scan=False, first_seen=entry.first_seen, report=report
        )
        now = datetime.fromtimestamp(self._clock(), UTC)
        result = engine.decide_risk_version(
            view.name, view.history, facts, now, reviewed_by=reviewer(entry.name, line.vers)
        )
        return result[1] if result is not None else None

    async def version_facts(
        self,
        entry: IndexEntry,
        line: IndexLine,
        engine: PolicyEngine,
        *,
        scan: bool,
        first_seen: float | None = None,
        report: CapabilityReport | None = None,
    ) -> VersionFacts:
        """Everything known about one version: its content (scanning it if `scan`), the
        scan of an earlier version (what the crate always did), the dependencies it adds."""
        problem = None
        if report is None:
            report = self.scans.known(line.cksum)
        if report is None and scan:
            try:
                crate = await asyncio.wait_for(self._crates.get(line), SCAN_TIMEOUT)
                report = await asyncio.wait_for(
                    self.scans.report(line.cksum, crate.read), SCAN_TIMEOUT
                )
            except TimeoutError:
                problem = f"no scan within {SCAN_TIMEOUT:.0f} s"
            except MirrorError as e:
                problem = str(e)
        elif report is None:
            problem = "not scanned yet (scans happen on download)"
        earlier = self._earlier_content(entry.index, line)
        added = await self._dependencies(entry.index, line, engine)
        seen = datetime.fromtimestamp(first_seen, UTC) if first_seen is not None else None
        return VersionFacts(
            line,
            parse_pubtime(line.pubtime),
            content_facts(report) if report is not None else None,
            problem,
            earlier,
            added,
            seen,
        )

    @staticmethod
    def _worth_scanning(
        index: IndexFile, name: NameFacts, history: CrateHistory, rule: RiskRule, now: datetime
    ) -> list[IndexLine]:
        """The release cargo would pick, when it is worth a download before the index is
        served: the crate is new (then it *is* its newest release), or the release is younger
        than `new_version` (the window in which a hijacked account's release is live). Any
        other version is judged when its crate is downloaded, or when a scan is already known;
        scanning every young release of a busy crate would put downloads on every cold index
        request."""
        newest = newest_release(index.lines)
        if newest is None:
            return []
        if is_new(name, history, rule, now):
            return [newest]
        published = parse_pubtime(newest.pubtime)
        if published is not None and now - published < rule.new_version:
            return [newest]
        return []

    def _earlier_content(self, index: IndexFile, line: IndexLine) -> ContentFacts | None:
        """The scan of the version published before `line`, if it was ever scanned."""
        previous = None
        for candidate in index.lines:
            if candidate.vers == line.vers:
                break
            previous = candidate
        report = self.scans.known(previous.cksum) if previous is not None else None
        return content_facts(report) if report is not None else None

    async def _dependencies(
        self, index: IndexFile, line: IndexLine, engine: PolicyEngine
    ) -> tuple[DependencyFacts, ...]:
        rule = engine.policy.rules.risk
        now = datetime.fromtimestamp(self._clock(), UTC)
        out = []
        for dep in added_dependencies(index, line)[:MAX_DEPENDENCIES]:
            facts = engine.name_facts(dep)
            if facts.rank is not None:
                out.append(DependencyFacts(dep, facts.typo, True, None))
                continue
            history = await self._dependency_history(dep)
            old = history is not None and (
                history.predates_pubtime
                or (
                    history.first_published is not None
                    and now - history.first_published >= rule.old
                )
            )
            out.append(DependencyFacts(dep, facts.typo, old, history))
        return tuple(out)

    async def _dependency_history(self, name: str) -> CrateHistory | None:
        try:
            dep = await asyncio.wait_for(self._indexes.get(name), DEPENDENCY_TIMEOUT)
        except (TimeoutError, NotFound, MirrorError) as e:
            log.info("evidence.dependency_unavailable", crate=name, error=str(e) or "timeout")
            return None
        return CrateHistory.from_index(dep.index, stale=dep.stale_reason is not None)


def newest_release(lines: Iterable[IndexLine], *, or_last: bool = True) -> IndexLine | None:
    """The line cargo resolves `*` to: the highest version that is neither yanked nor a
    pre-release (when none qualifies: the newest line, or None if not `or_last`)."""
    best: tuple[Version, IndexLine] | None = None
    last = None
    for line in lines:
        last = line
        try:
            version = Version.parse(line.vers)
        except ValueError:
            continue
        if line.yanked or version.pre:
            continue
        if best is None or version > best[0]:
            best = (version, line)
    return best[1] if best is not None else last if or_last else None


def content_facts(report: CapabilityReport) -> ContentFacts:
    """A scan report as the rule reads it: (kind, where it runs) -> evidence lines."""
    items: dict[tuple[str, RunsAt], list[str]] = {}
    for groups in (report.capabilities, report.findings):
        for kind, evidence in groups.items():
            for e in evidence:
                where = RunsAt(context_of(report, e.file).value)
                items.setdefault((str(kind), where), []).append(str(e))
    return ContentFacts(report.version, {k: tuple(v) for k, v in items.items()})
