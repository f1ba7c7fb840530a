"""Reviews: what the mirror holds back for a person, its evidence, and the actions on it.

Pending reviews come from the audit index (mirror.audit.index: per crate version, the latest
block or quarantine with no approval, denial or served download since), so they cover every
rule and every worker, and a CLI sees exactly what the console does. A review shows the
latest hold's own details: the capabilities a version adds beyond what the lock approves,
each piece of evidence with the source lines around it (read from the stored crate, never
unpacked to disk), and the malicious-crate rule's signals with their points.

Approving is a human approval in the reviewed capability lock, the same as `crate-mirror
approve NAME@VERSION` (what the version's scan found, `reviewed` = that version), which lifts
both the capability rule and the malicious-crate rule (`risk`) for it; every approval records
who. It bumps the lock epoch so every worker decides by the new lock at once. Denying keeps a
version held and takes it off the pending list, on the record. Holds by other rules (a
typosquat, a deny entry, an advisory) are lifted by a policy change, not by the lock: they
are shown with their reason and can be denied, not approved.
"""

from __future__ import annotations

import datetime as dt
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from mirror.audit import AuditEvent, AuditSink
from mirror.audit.index import AuditIndex, Hold
from mirror.errors import ArchiveError, BadRequest, MirrorError
from mirror.index import CrateRef, IndexFile, IndexLine
from mirror.policy.capability_lock import CapabilityLock, merged, unapproved
from mirror.policy.semver import Version
from mirror.scan.archive import ArchiveLimits, CrateFiles
from mirror.scan.report import Capability, CapabilityReport
from mirror.serving.capability_guard import LockPlaces
from mirror.serving.prefetch import crates_in_lockfile_text
from mirror.serving.scans import Scans
from mirror.sources.capability_lockfile import load_lock, update_lock
from mirror.store import Store

log = structlog.get_logger("mirror.review")
LOCK_LIFTS = frozenset({"capabilities", "risk"})  # rules a human approval in the lock lifts
SNIPPET_LINES = 3  # source lines shown before and after each piece of evidence
MAX_LINE_CHARS = 240  # characters of one source line shown (minified code can be one line)
MAX_TARGETS = 5000  # crate versions one approve/deny may name


@dataclass(frozen=True)
class SourceLine:
    number: int
    text: str
    hit: bool  # the evidence's own line


@dataclass(frozen=True)
class EvidenceView:
    file: str
    line: int
    item: str
    source: tuple[SourceLine, ...]  # empty when the crate is not in the cache


@dataclass(frozen=True)
class Addition:
    capability: str
    evidence: tuple[EvidenceView, ...]


@dataclass(frozen=True)
class RiskSignal:
    id: str
    points: float
    text: str


@dataclass(frozen=True)
class RiskView:
    verdict: str
    score: float
    signals: tuple[RiskSignal, ...]
    meant: str | None
    until: str | None
    missing: tuple[str, ...]


@dataclass(frozen=True)
class Review:
    hold: Hold
    event: Mapping[str, Any]  # the latest hold, whole, from its chain file
    intact: bool  # that line still hashes to what was indexed
    version: str  # the version an approval is for (a crate-wide hold: the newest one)
    added: tuple[Addition, ...]
    approved: tuple[str, ...] | None  # what the lock approves for the version (None: absent)
    found: tuple[str, ...] | None  # what the version's scan found (None: not scanned)
    risk: RiskView | None
    near: Mapping[str, Any] | None  # details.near_name
    approvable: bool  # an approval in the lock lifts this hold
    command: str  # the CLI command that approves it, with the server's settings


@dataclass
class Outcome:
    done: list[str]  # crate@version
    skipped: list[tuple[str, str]]  # (crate@version, why)


Target = tuple[str, str]  # (crate, version as held; "" for the crate as a whole)


class ReviewDesk:
    def __init__(self, index: AuditIndex, store: Store, places: LockPlaces, audit: AuditSink):
        self.index = index
        self.places = places
        self._store = store
        self._scans = Scans(store)
        self._audit = audit

    # -- reading ------------------------------------------------------------------------------

    def current(self) -> None:
        """Everything recorded so far in the chain, then in the index: what was refused a
        moment ago is on the next page."""
        self._audit.flush()
        self.index.refresh()

    def pending(self, *, limit: int = 200, offset: int = 0) -> list[Hold]:
        self.current()
        return self.index.pending(limit=limit, offset=offset)

    def review(self, crate: str, version: str) -> Review | None:
        """Everything a person needs to decide on one held crate version."""
        self.current()
        hold = self.index.hold(crate, version)
        if hold is None:
            return None
        stored = self.index.event(hold.last_seq)
        event = dict(stored.fields) if stored is not None else {}
        details = event.get("details")
        info: Mapping[str, Any] = details if isinstance(details, Mapping) else {}
        line = self._line(hold.crate, hold.version or None)
        target = hold.version or (line.vers if line is not None else "")
        report = self._scans.known(line.cksum) if line is not None else None
        archive = self._archive(line) if line is not None else None
        lock = self._lock()
        approved = lock.approved_for(hold.crate, target) if _parses(target) else None
        return Review(
            hold=hold,
            event=event,
            intact=stored.intact if stored is not None else False,
            version=target,
            added=_additions(info.get("added"), report, approved, archive),
            approved=_names(approved) if approved is not None else None,
            found=_names(report.capability_set) if report is not None else None,
            risk=_risk(info.get("risk")),
            near=info.get("near_name") if isinstance(info.get("near_name"), Mapping) else None,
            approvable=hold.rule in LOCK_LIFTS and bool(target),
            command=self._command(hold, target, info),
        )

    def holds_in_lockfile(self, text: str) -> list[Hold]:
        """What a Cargo.lock needs reviewed: the open holds of its registry packages."""
        refs = crates_in_lockfile_text(text, "the lockfile")
        self.current()
        return self.index.holds_of((ref.name, ref.version) for ref in refs)

    # -- acting -------------------------------------------------------------------------------

    def approve(self, targets: Sequence[Target], by: str, why: str, *, via: str) -> Outcome:
        """Approve each held version in the reviewed lock (one write for all of them), with
        what its scan found; lifts the capability and malicious-crate rules for it."""
        outcome = Outcome([], [])
        plan: list[tuple[Hold, str, frozenset[Capability]]] = []
        for hold, problem in self._holds(targets, outcome):
            if problem is None and hold.rule not in LOCK_LIFTS:
                problem = f"held by rule {hold.rule}: lifted by a policy change, not the lock"
            line = self._line(hold.crate, hold.version or None)
            version = hold.version or (line.vers if line is not None else "")
            if problem is None and not version:
                problem = "no version of it is known to approve"
            if problem is not None:
                outcome.skipped.append((_label(hold.crate, hold.version), problem))
                continue
            plan.append((hold, version, self._capabilities(hold, line)))
        if not plan:
            return outcome
        when = dt.datetime.now(dt.UTC)

        def change(lock: CapabilityLock) -> CapabilityLock:
            for hold, version, caps in plan:
                lock = lock.with_approval(hold.crate, None, caps, by, why, when, reviewed=version)
            return lock

        update_lock(self.places.reviewed, change, epoch=self.places.epoch)
        for hold, version, caps in plan:
            listed = ", ".join(c.value for c in Capability if c in caps) or "no capabilities"
            self._audit.record(
                AuditEvent(
                    action="approve",
                    rule=hold.rule,
                    reason=f"{by} approved {listed} for {hold.crate} (reviewed {version}): {why}",
                    route=via,
                    crate=hold.crate,
                    version=version,
                    details={
                        "capabilities": sorted(c.value for c in caps),
                        "by": by,
                        "why": why,
                        "lock": str(self.places.reviewed),
                        "held": hold.last_seq,
                    },
                )
            )
            outcome.done.append(_label(hold.crate, version))
        log.info("review.approved", by=by, via=via, crates=outcome.done)
        self._settle()
        return outcome

    def deny(self, targets: Sequence[Target], by: str, why: str, *, via: str) -> Outcome:
        """Keep each version held and take it off the pending list, on the record."""
        outcome = Outcome([], [])
        for hold, problem in self._holds(targets, outcome):
            if problem is not None:
                outcome.skipped.append((_label(hold.crate, hold.version), problem))
                continue
            self._audit.record(
                AuditEvent(
                    action="deny",
                    rule=hold.rule,
                    reason=f"{by} denied {_label(hold.crate, hold.version)}: {why}",
                    route=via,
                    crate=hold.crate,
                    version=hold.version or None,
                    details={"by": by, "why": why, "held": hold.last_seq},
                )
            )
            outcome.done.append(_label(hold.crate, hold.version))
        if outcome.done:
            log.info("review.denied", by=by, via=via, crates=outcome.done)
            self._settle()
        return outcome

    # -- helpers ------------------------------------------------------------------------------

    def _holds(
        self, targets: Sequence[Target], outcome: Outcome
    ) -> Iterable[tuple[Hold, str | None]]:
        if len(targets) > MAX_TARGETS:
            raise BadRequest(f"at most {MAX_TARGETS} crate versions at once")
        self.current()
        seen: set[Target] = set()
        for crate, version in targets:
            if (crate, version) in seen:
                continue
            seen.add((crate, version))
            hold = self.index.hold(crate, version)
            if hold is None:
                outcome.skipped.append((_label(crate, version), "nothing is held under this name"))
                continue
            yield hold, (None if hold.open else "not pending (already reviewed or served)")

    def _settle(self) -> None:
        """Written and indexed before returning: the next page shows the new state."""
        try:
            self._audit.flush()
            self.index.refresh()
        except MirrorError as e:
            log.error("review.settle_failed", error=str(e))

    def _lock(self) -> CapabilityLock:
        return merged(load_lock(self.places.reviewed), load_lock(self.places.recorded))

    def _line(self, crate: str, version: str | None) -> IndexLine | None:
        """The cached index line of this version (None: the newest non-yanked one)."""
        cached = self._store.read_index(crate)
        if cached is None:
            return None
        try:
            index = IndexFile.parse(cached.body)
        except ValueError:
            return None
        if version is not None:
            return index.find(version)
        lines = [line for line in index.lines if not line.yanked and _parses(line.vers)]
        return max(lines, key=lambda line: Version.parse(line.vers), default=None)

    def _archive(self, line: IndexLine) -> SourceFiles | None:
        if not self._store.has_crate(line.cksum):
            return None
        try:
            return SourceFiles(self._store.crate_path(line.cksum).read_bytes())
        except (OSError, ArchiveError):
            return None

    def _capabilities(self, hold: Hold, line: IndexLine | None) -> frozenset[Capability]:
        """What the approval allows: what the version's scan found (as `approve` without
        --caps does); without a scan, what the hold said it adds."""
        report: CapabilityReport | None = None
        if line is not None:
            report = self._scans.known(line.cksum)
        if report is not None:
            return report.capability_set
        stored = self.index.event(hold.last_seq)
        details = stored.fields.get("details") if stored is not None else None
        added = details.get("added") if isinstance(details, Mapping) else None
        caps = set()
        for name in added or {}:
            try:
                caps.add(Capability(name))
            except ValueError:
                continue
        return frozenset(caps)

    def _command(self, hold: Hold, version: str, info: Mapping[str, Any]) -> str:
        command = info.get("approve")
        if isinstance(command, str) and hold.version:
            return command
        spec = f"{hold.crate}@{version or 'VERSION'}"
        return f'crate-mirror approve {shlex.quote(spec)} --reason "..."{self.places.command_flags}'


def _label(crate: str, version: str) -> str:
    return f"{crate}@{version}" if version else crate


def _parses(version: str) -> bool:
    try:
        Version.parse(version)
    except ValueError:
        return False
    return True


def _names(caps: Iterable[Capability]) -> tuple[str, ...]:
    chosen = set(caps)
    return tuple(c.value for c in Capability if c in chosen)


def _additions(
    added: Any,
    report: CapabilityReport | None,
    approved: frozenset[Capability] | None,
    archive: SourceFiles | None,
) -> tuple[Addition, ...]:
    """What the version adds beyond the lock: as the capability hold recorded it, or, when the
    latest hold was another rule's (the risk rule holds the same version), from its scan."""
    if not isinstance(added, Mapping):
        if report is None:
            return ()
        added = {
            c.value: [{"file": e.file, "line": e.line, "item": e.item} for e in ev]
            for c, ev in unapproved(report, approved).items()
        }
    out = []
    for capability, evidence in added.items():
        items = evidence if isinstance(evidence, list) else []
        views = []
        for piece in items:
            if not isinstance(piece, Mapping):
                continue
            file, line = str(piece.get("file", "")), piece.get("line")
            number = line if isinstance(line, int) else 0
            views.append(
                EvidenceView(
                    file, number, str(piece.get("item", "")), _source(archive, file, number)
                )
            )
        out.append(Addition(str(capability), tuple(views)))
    return tuple(out)


class SourceFiles:
    """The source files of a stored crate, read once through the scanner's bounded reader
    (the same checks as a scan: a hostile archive raises ArchiveError)."""

    def __init__(self, data: bytes) -> None:
        files = CrateFiles(data, ArchiveLimits(), keep=lambda path, size: _is_source(path))
        self._texts = {e.path: e.content for e in files if e.content is not None}

    def text(self, file: str) -> str | None:
        data = self._texts.get(file)
        return data.decode("utf-8", errors="replace") if data is not None else None


def _is_source(path: str) -> bool:
    return path.endswith((".rs", ".toml"))


def _source(archive: SourceFiles | None, file: str, line: int) -> tuple[SourceLine, ...]:
    """The lines around `line` of `file` in the crate, as text (escaped where shown)."""
    if archive is None or line < 1:
        return ()
    text = archive.text(file)
    if text is None:
        return ()
    lines = text.splitlines()
    first, last = max(1, line - SNIPPET_LINES), min(len(lines), line + SNIPPET_LINES)
    return tuple(
        SourceLine(n, lines[n - 1][:MAX_LINE_CHARS], n == line) for n in range(first, last + 1)
    )


def _risk(risk: Any) -> RiskView | None:
    if not isinstance(risk, Mapping):
        return None
    signals = []
    for s in risk.get("signals") or []:
        if isinstance(s, Mapping):
            points = s.get("points")
            signals.append(
                RiskSignal(
                    str(s.get("id", "")),
                    float(points) if isinstance(points, int | float) else 0.0,
                    str(s.get("text", "")),
                )
            )
    score = risk.get("score")
    missing = risk.get("missing")
    return RiskView(
        verdict=str(risk.get("verdict", "")),
        score=float(score) if isinstance(score, int | float) else 0.0,
        signals=tuple(signals),
        meant=str(risk["meant"]) if risk.get("meant") is not None else None,
        until=str(risk["until"]) if risk.get("until") is not None else None,
        missing=tuple(str(m) for m in missing) if isinstance(missing, list) else (),
    )


def parse_targets(values: Iterable[str]) -> list[Target]:
    """Form values `crate@version` (or a bare crate for a crate-wide hold) as targets."""
    targets = []
    for value in values:
        crate, _, version = value.partition("@")
        if not crate:
            raise BadRequest(f"not a crate: {value!r}")
        if version:
            CrateRef.parse(value)  # validates both parts
        targets.append((crate, version))
    return targets
