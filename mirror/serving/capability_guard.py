"""The capability lock at serving time: judge each crate by its scan, record first sightings.

A first sighting under `first_seen: trust` (a crate the lock has no entry for) is allowed
whatever its scan finds, so it is answered once its archive passed the checks that refuse a
hostile `.crate`; the scan and the record follow in the background once downloads pause
(mirror.serving.scans).
Another version of that crate asked for meanwhile waits for the record, so it is still
compared with the first. Everything else waits for its scan, as a verdict depends on it.

The decision itself is pure (`mirror.policy.capability_lock.decide_capabilities`); this module
does the I/O around it: scan reports (mirror.serving.scans, once per sha256), the two lock
files (the reviewed lock people approve in, and the trust-on-first-use records, written under
a file lock in the cache directory, never into the checkout), and, for crates already in the
lock, scanning new versions in the background when their index file changes: under `mode:
block`, until its scan is known a new version is simply not in the served index, so `cargo
update` never resolves to a version that would be refused, and never waits for a scan
either. What it decides on its own (a first sighting, a version held back ahead of time) goes
to the audit callback it is given.

An approval or a revoke takes effect at once in every worker: the writer bumps the lock epoch
(mirror.epoch.Epoch), and `generation`, read before each decision
and on every warm hit, reloads the locks when it moved. A finished scan changes only the
verdicts about its own crate (`scanned_since`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import shlex
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from mirror.audit import AuditEvent
from mirror.config import Settings
from mirror.epoch import Epoch
from mirror.errors import ArchiveError, ConfigError, MirrorError
from mirror.index import IndexFile, IndexLine
from mirror.policy.capability_lock import (
    PENDING_SCAN,
    RECORDING,
    RULE,
    CapabilityRule,
    decide_capabilities,
    merged,
    record_first_seen,
)
from mirror.policy.decision import Action, Decision, Mode
from mirror.policy.schema import CapabilitiesRule
from mirror.policy.semver import Version
from mirror.scan.report import CapabilityReport
from mirror.serving.downloads import CrateFile
from mirror.serving.index_cache import IndexEntry
from mirror.serving.scans import Scans
from mirror.sources.capability_lockfile import (
    EPOCH_NAME,
    load_lock,
    record_lock_in_use,
    update_lock,
)
from mirror.sources.policy_files import PolicyFiles

log = structlog.get_logger("mirror.capabilities")
SCANS_AHEAD_AT_ONCE = 2  # background scans of new versions running at the same time
# First sightings are scanned once downloads pause this long (a build's fetch is over) ...
RECORD_WHEN_QUIET = 0.5
RECORD_WITHIN = 10.0  # ... or this long after they were answered, whichever comes first
MAX_ANNOUNCED = 10_000  # holds remembered as audited (`CapabilityGuard._announce`)

Audit = Callable[[AuditEvent], None]
FetchCrate = Callable[[IndexLine], Awaitable[CrateFile]]


@dataclass
class _Sighting:
    """A first sighting being recorded: `checked` once its archive passed, `recorded` when
    its scan and record are done (or failed). Recorded once, by whoever gets its scan first:
    the background, or a request for another version of the crate that cannot wait for it."""

    line: IndexLine
    crate: CrateFile
    checked: asyncio.Future[None]
    recorded: asyncio.Future[None]
    claimed: bool = False  # someone is recording it


@dataclass(frozen=True)
class LockPlaces:
    """Where the lock's parts live, as the server runs: the reviewed lock (people), the
    trust-on-first-use records, the epoch file, and the flags that make a printed approve
    command act on exactly these."""

    reviewed: Path
    recorded: Path
    epoch: Path
    cache_dir: Path
    audit_dir: Path

    @classmethod
    def of(cls, reviewed: Path, settings: Settings) -> LockPlaces:
        return cls(
            reviewed.resolve(),
            settings.tofu_lock_path.resolve(),
            (settings.state_directory / EPOCH_NAME).resolve(),
            settings.cache_dir.resolve(),
            settings.audit_directory.resolve(),
        )

    @property
    def command_flags(self) -> str:
        """` --lock L --cache-dir C --audit-dir A`: absolute, so a copied command works from
        any directory (the defaults are relative to wherever it is run)."""
        flags = ["--lock", str(self.reviewed), "--cache-dir", str(self.cache_dir)]
        if self.audit_dir != self.cache_dir / "audit":
            flags += ["--audit-dir", str(self.audit_dir)]
        return " " + shlex.join(flags)


class CapabilityGuard:
    def __init__(
        self,
        places: LockPlaces,
        rule: CapabilitiesRule,
        scans: Scans,
        audit: Audit,
        policy_digest: str | None = None,
    ) -> None:
        """Raises ConfigError for an invalid lock file (a reload then keeps the old guard)."""
        self._places = places
        record_lock_in_use(places.epoch.parent, places.reviewed)  # for `approve` (a typo)
        self._epoch = Epoch(places.epoch)
        self._epoch_seen = self._epoch.read()
        self._reviewed = load_lock(places.reviewed)
        self._recorded = load_lock(places.recorded)
        self._lock = merged(self._reviewed, self._recorded)
        self._changes = 0  # bumped whenever a verdict may have changed
        self._rule = CapabilityRule(
            mode=rule.mode, first_seen=rule.first_seen.value, command_flags=places.command_flags
        )
        self._scans = scans
        self._audit = audit
        self._policy_digest = policy_digest  # of the policy this guard was built from
        self._scanning: asyncio.Semaphore | None = None  # made on the serving loop
        self._background: set[asyncio.Future[Any]] = set()
        self._sightings: dict[str, _Sighting] = {}  # crate name -> its first sighting
        self._last_decided = 0.0  # loop time of the last download decided
        self._hurry: asyncio.Event | None = None  # set by `settle`: record now (serving loop)
        # (crate, version) -> the reason of the hold last audited for it (`_announce`)
        self._announced: dict[tuple[str, str], str] = {}

    @classmethod
    def for_policy(
        cls, files: PolicyFiles, scans: Scans, audit: Audit, settings: Settings
    ) -> CapabilityGuard | None:
        """The guard the policy last loaded by `files` asks for; None when the rule is off."""
        policy = files.policy
        assert policy is not None, "load the policy first"
        rule = policy.rules.capabilities
        if rule.mode is Mode.OFF:
            return None
        places = LockPlaces.of(files.lock_path(policy), settings)
        return cls(places, rule, scans, audit, policy.digest)

    @property
    def generation(self) -> int:
        """Changes whenever any verdict may have: a first sighting was recorded, a verdict
        newly learnt, or someone approved or revoked (the epoch; then the locks are reloaded
        here). A finished scan changes only its own crate's: `scanned_since`."""
        epoch = self._epoch.read()
        if epoch != self._epoch_seen:
            self._reload(epoch)
        return self._changes

    @property
    def scans_made(self) -> int:
        """Counts the scans this process made; a mark for `scanned_since`."""
        return self._scans.generation

    def scanned_since(self, mark: int, index: IndexFile) -> bool:
        """Whether a version of `index` was scanned after `scans_made` was `mark`."""
        return self._scans.made_since(mark, (line.cksum for line in index.lines))

    @property
    def places(self) -> LockPlaces:
        return self._places

    def _reload(self, epoch: int) -> None:
        try:
            self._reviewed = load_lock(self._places.reviewed)
            self._recorded = load_lock(self._places.recorded)
        except ConfigError as e:
            # Keep deciding by the last valid lock; the policy watcher reports it too.
            log.error("capabilities.lock_invalid", problems=str(e))
        self._lock = merged(self._reviewed, self._recorded)
        self._epoch_seen = epoch
        self._changes += 1

    # -- verdicts -----------------------------------------------------------------------------

    def reviewer(self, name: str, version: str | None = None) -> str | None:
        """Who approved this crate (any version), or this very version, after looking at it."""
        self.generation  # noqa: B018 (reloads the locks if someone approved meanwhile)
        return self._lock.reviewer(name, version)

    def approve_command(self, name: str, version: str) -> str:
        """The command that approves `name` at `version` as reviewed, acting on this server's
        lock, cache and audit log (the capabilities the scan found are approved with it)."""
        spec = shlex.quote(f"{name}@{version}")
        return f'crate-mirror approve {spec} --reason "..."{self._places.command_flags}'

    def known_verdicts(self, index: IndexFile) -> Mapping[str, Decision]:
        """Versions of this index file to hold back: those a known scan says need approval,
        and, of a crate in the lock under `mode: block`, new versions not scanned yet (served
        once they are)."""
        self.generation  # noqa: B018 (reloads the locks if someone approved meanwhile)
        out: dict[str, Decision] = {}
        reports = {line.vers: self._scans.known(line.cksum) for line in index.lines}
        for line in index.lines:
            report = reports[line.vers]
            if report is not None:
                decision = self._decide(line, report)
                self._announce(line, decision)
                if decision.action is not Action.ALLOW:
                    out[line.vers] = decision
        if self._rule.mode is Mode.BLOCK:
            # Only a scan that can hold a version back is waited for: a dry run (`warn`)
            # serves the new version at once and records what its scan finds.
            for line in self._unscanned_new(index, reports):
                out[line.vers] = _not_scanned_yet(line)
        return out

    async def decide(self, line: IndexLine, crate: CrateFile) -> Decision:
        self.generation  # noqa: B018 (reloads the locks if someone approved meanwhile)
        self._last_decided = asyncio.get_running_loop().time()
        if self._scans.known(line.cksum) is None:
            sighting = self._sightings.get(line.name)
            if sighting is not None and sighting.line.vers == line.vers:
                await asyncio.shield(sighting.checked)  # ArchiveError: refused here too
                return _recording(line)
            if sighting is not None:
                # Judged against the first version's record: made now if the background
                # scanner has not got to it yet.
                await self._record(sighting, background=False)
            elif self._trusted_on_first_use(line):
                return await self._first_sighting(line, crate)
        report = await self._scans.report(line.cksum, crate.read)
        decision = self._decide(line, report)
        if decision.details.get("record"):
            await asyncio.to_thread(self._record_first_seen, line, report)
        elif decision.action is not Action.ALLOW:
            self._changes += 1  # newly known verdict: index views drop this version
        self._announce(line, decision, audited=True)  # the gate audits this download
        return decision

    async def settle(self) -> None:
        """Wait until every first sighting answered so far is recorded (or failed)."""
        pending = [s.recorded for s in self._sightings.values()]
        if self._hurry is not None:
            self._hurry.set()  # the records waiting for a pause are made now
            self._hurry = None  # later ones wait for a pause again
        if pending:
            log.info("capabilities.recording", crates=len(pending))  # a batch command may wait
            await asyncio.gather(*pending, return_exceptions=True)

    def _trusted_on_first_use(self, line: IndexLine) -> bool:
        """Whether `decide_capabilities` allows this version whatever its scan finds."""
        unknown = self._lock.approved_for(line.name, line.vers) is None
        return self._rule.first_seen == "trust" and unknown

    async def _first_sighting(self, line: IndexLine, crate: CrateFile) -> Decision:
        """Answer once the archive is safe to hand out; scan and record in the background."""
        loop = asyncio.get_running_loop()
        sighting = _Sighting(line, crate, loop.create_future(), loop.create_future())
        self._sightings[line.name] = sighting  # before any await: one first sighting per crate
        try:
            await self._scans.check_archive(line.cksum, crate.read, body=crate.body)
        except BaseException as e:
            sighting.checked.set_exception(e if isinstance(e, Exception) else ArchiveError(str(e)))
            sighting.checked.exception()  # retrieved: the requests that shared it raised it
            self._end_sighting(line.name, sighting)
            raise
        sighting.checked.set_result(None)
        task = asyncio.ensure_future(self._record_later(sighting))
        self._background.add(task)  # keep a reference until it is done
        task.add_done_callback(self._background.discard)
        return _recording(line)

    async def _record_later(self, sighting: _Sighting) -> None:
        """Record a first sighting once downloads pause: a cold build asks for its crates one
        after another, and a scan meanwhile, even at the lowest priority, takes CPU time its
        requests then wait for (docs/benchmarks.md). Nothing waits for the record but a
        request for another version of the crate, which makes it itself."""
        loop = asyncio.get_running_loop()
        if self._hurry is None:
            self._hurry = asyncio.Event()
        hurry = self._hurry
        deadline = loop.time() + RECORD_WITHIN
        while not hurry.is_set():
            now = loop.time()
            wait = min(self._last_decided + RECORD_WHEN_QUIET, deadline) - now
            if wait <= 0:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(hurry.wait(), wait)
        await self._record(sighting, background=True)

    async def _record(self, sighting: _Sighting, *, background: bool) -> None:
        """Scan the first sighting and record it, once; other callers wait for that."""
        line, read = sighting.line, sighting.crate.read
        if not sighting.claimed:
            try:
                report = await self._scans.report(line.cksum, read, background=background)
            except MirrorError as e:
                if not sighting.claimed:
                    sighting.claimed = True
                    self._scan_failed(sighting, e)
            except Exception:  # often a background task: a bug must be logged, not lost
                if not sighting.claimed:
                    sighting.claimed = True
                    log.exception(
                        "capabilities.first_seen_crashed", crate=line.name, version=line.vers
                    )
                    self._end_sighting(line.name, sighting)
            except BaseException:  # cancelled (shutdown): nobody waits for it any more
                self._end_sighting(line.name, sighting)
                raise
            else:
                if not sighting.claimed:
                    sighting.claimed = True
                    try:
                        await self._record_report(line, report)
                    except Exception:  # the lock file could not be written: said, not lost
                        log.exception(
                            "capabilities.first_seen_unrecorded", crate=line.name, version=line.vers
                        )
                    finally:
                        self._end_sighting(line.name, sighting)
        await asyncio.shield(sighting.recorded)

    async def _record_report(self, line: IndexLine, report: CapabilityReport) -> None:
        self.generation  # noqa: B018 (an approval or a revoke since the answer counts)
        decision = self._decide(line, report)
        if decision.details.get("record"):
            await asyncio.to_thread(self._record_first_seen, line, report)
        elif decision.action is not Action.ALLOW:
            # The lock changed meanwhile (an approval of another version, a revoke): the
            # version was answered already, so say so where people look.
            self._changes += 1
            self._audit(self._event(line, decision, route="download"))

    def _scan_failed(self, sighting: _Sighting, error: MirrorError) -> None:
        line = sighting.line
        log.error(
            "capabilities.first_seen_failed", crate=line.name, version=line.vers, error=str(error)
        )
        reason = (
            f"{line.name} {line.vers} was answered on first sighting, but its scan failed "
            f"({error}); it is not in the capability lock"
        )
        self._audit(self._event(line, Decision(Action.WARN, RULE, reason), route="download"))
        self._end_sighting(line.name, sighting)

    def _end_sighting(self, name: str, sighting: _Sighting) -> None:
        if self._sightings.get(name) is sighting:
            del self._sightings[name]
        if not sighting.recorded.done():
            sighting.recorded.set_result(None)

    def _event(self, line: IndexLine, decision: Decision, *, route: str) -> AuditEvent:
        return AuditEvent(
            action=decision.action.value,
            rule=decision.rule,
            reason=decision.reason,
            route=route,
            crate=line.name,
            version=line.vers,
            policy_digest=self._policy_digest,
            cksum=line.cksum,
            details=dict(decision.details),
        )

    def _decide(self, line: IndexLine, report: CapabilityReport) -> Decision:
        # Judge the crate by the name and version the index lists, never by what its own
        # Cargo.toml claims: a crate calling itself `serde` must not borrow serde's approvals.
        named = dataclasses.replace(report, name=line.name, version=line.vers)
        return decide_capabilities(named, self._lock, self._rule)

    def _record_first_seen(self, line: IndexLine, report: CapabilityReport) -> None:
        now = dt.datetime.now(dt.UTC)
        named = dataclasses.replace(report, name=line.name, version=line.vers)
        self._recorded = update_lock(
            self._places.recorded, lambda lock: record_first_seen(lock, named, now)
        )
        self._lock = merged(self._reviewed, self._recorded)
        self._changes += 1
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

    def _unscanned_new(
        self, index: IndexFile, reports: Mapping[str, CapabilityReport | None]
    ) -> list[IndexLine]:
        """New versions of a crate in the lock whose scan is not known yet, oldest first.

        New means newer than every version people (or trust on first use) reviewed, or, for
        a hand-written approval without `reviewed`, than every version already scanned.
        Yanked versions are left alone (cargo resolves to them only from a Cargo.lock).
        """
        if not self._in_lock(index):
            return []  # trust-on-first-use or approval happens at download
        floor = self._floor(index.lines[0].name, reports)
        if floor is None:
            return []
        new = [
            line
            for line in index.lines
            if reports.get(line.vers) is None
            and not line.yanked
            and _version_key(line.vers) > floor
        ]
        return sorted(new, key=lambda line: _version_key(line.vers))

    def _in_lock(self, index: IndexFile) -> bool:
        return (
            bool(index.lines) and self._lock.approved_for(index.lines[0].name, "0.0.0") is not None
        )

    def _floor(
        self, name: str, reports: Mapping[str, CapabilityReport | None]
    ) -> tuple[int, Version] | None:
        """The newest version reviewed (or, failing that, scanned): newer ones are new."""
        reviewed = [_version_key(v) for v in self._lock.reviewed_versions(name)]
        if reviewed:
            return max(reviewed)
        return max((_version_key(v) for v, r in reports.items() if r is not None), default=None)

    async def scan_ahead(self, entry: IndexEntry, fetch: FetchCrate) -> None:
        """Start scanning the new versions of a crate the lock knows, in the background.

        Once per index content. Nothing waits for those scans: until a version's scan is
        known, `known_verdicts` keeps it out of the served index (cargo resolves to what is
        known), and when a scan finishes `scanned_since` says so, so the next request
        gets a view with the version in it, or held back if it needs approval. Without this,
        `cargo update` would lock a new version that the download then refuses.

        Only when nothing tells what "new" is (a hand-written approval without `reviewed`,
        nothing scanned yet) is the newest version scanned first, once, while requests wait.
        """
        views = entry.views
        started = views.scan_ahead
        if started is None:
            # Not in the lock: trust on first use or approval happens at download. Asked on
            # every request, as an approval may add the crate.
            if not self._in_lock(entry.index):
                return
            started = views.scan_ahead = asyncio.ensure_future(
                self._start_scans(entry.index, fetch)
            )
        try:
            if started.done():
                started.result()  # without a turn of the loop: most index requests come here
            else:
                await asyncio.shield(started)
        except Exception:
            views.scan_ahead = None  # a bug must not stick to this index forever
            raise

    async def _start_scans(self, index: IndexFile, fetch: FetchCrate) -> None:
        if not self._in_lock(index):
            return
        reports = {line.vers: self._scans.known(line.cksum) for line in index.lines}
        if self._floor(index.lines[0].name, reports) is None:
            candidates = [line for line in index.lines if not line.yanked]
            if candidates:
                newest = max(candidates, key=lambda line: _version_key(line.vers))
                await self._scan_one(newest, fetch)
                reports[newest.vers] = self._scans.known(newest.cksum)
        lines = self._unscanned_new(index, reports)
        if lines:
            if self._scanning is None:
                self._scanning = asyncio.Semaphore(SCANS_AHEAD_AT_ONCE)
            limit = self._scanning
            task = asyncio.ensure_future(
                asyncio.gather(*(self._scan_one(line, fetch, limit) for line in lines))
            )
            self._background.add(task)  # keep a reference until it is done
            task.add_done_callback(self._background.discard)

    async def _scan_one(
        self, line: IndexLine, fetch: FetchCrate, limit: asyncio.Semaphore | None = None
    ) -> None:
        try:
            async with limit or contextlib.nullcontext():
                crate = await fetch(line)
                report = await self._scans.report(line.cksum, crate.read)
        except MirrorError as e:
            # Stays hidden; scanned again when the index file is next revalidated.
            log.warning(
                "capabilities.prescan_failed", crate=line.name, version=line.vers, error=str(e)
            )
            return
        except Exception:  # a background task: a bug must be logged, not lost
            log.exception("capabilities.prescan_crashed", crate=line.name, version=line.vers)
            return
        decision = self._decide(line, report)
        if decision.action is not Action.ALLOW:
            self._changes += 1
        self._announce(line, decision)

    def _announce(self, line: IndexLine, decision: Decision, *, audited: bool = False) -> None:
        """Audit a hold (under `mode: warn`, a finding) of a version once, with its evidence
        and approve command, whoever learnt it: this guard's scan ahead, the risk rule's scan
        of a new version, a revoke that turned approvals off. `pending`, the console and the
        alerts read the audit log; a version only kept out of the index would otherwise
        wait for a review nobody was told about. Said again only when its reason changes."""
        key = (line.name.lower(), line.vers)
        if decision.action is Action.ALLOW:
            self._announced.pop(key, None)
            return
        if self._announced.get(key) == decision.reason:
            return
        if len(self._announced) >= MAX_ANNOUNCED:
            self._announced.clear()  # at worst a hold is audited twice
        self._announced[key] = decision.reason
        if not audited:
            self._audit(self._event(line, decision, route="index"))


def _recording(line: IndexLine) -> Decision:
    return Decision(
        Action.ALLOW,
        RULE,
        f"{line.name} is new to the capability lock; trusted on first use, recorded once its "
        "scan is done",
        {RECORDING: True},
    )


def _not_scanned_yet(line: IndexLine) -> Decision:
    """Keeps a new version out of the served index until its scan is known. Not enforced on a
    download (the download scans it), never audited: it lasts only as long as the scan."""
    return Decision(
        Action.BLOCK,
        "capabilities",
        f"{line.name} {line.vers} is new and not scanned yet; it is served once its scan is known",
        {PENDING_SCAN: True},
    )


_LOWEST = Version.parse("0.0.0")


def _version_key(vers: str) -> tuple[int, Version]:
    try:
        return (1, Version.parse(vers))
    except ValueError:
        return (0, _LOWEST)
