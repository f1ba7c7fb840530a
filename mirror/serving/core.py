"""The serving core: what a request for an index file or a crate goes through, without HTTP.

    index:     validate -> decide (name) -> index file: memory, store or upstream (+TUF)
               -> weigh the evidence (malicious crates) -> scan ahead (locked crates)
               -> decide (versions) -> record
    download:  validate -> decide (name) -> index file -> weigh the evidence -> decide
               (version) -> crate: memory, store or upstream (checksum) -> scan -> decide
               (malicious version, capabilities) -> record
               (a download the cached index file contradicts, a version it lacks or a crate
               that misses its cksum, fetches that file from upstream once more first)

The HTTP handlers (mirror.http), `prefetch` and `export` all call these two functions; each
answer carries what its caller needs, including `reusable`: a check that stays true while the
same request would get the same answer (the front door repeats it until then).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mirror.audit.feed import MAX_ENTRIES, newest_entries, render_atom, render_json
from mirror.config import Settings
from mirror.errors import (
    ArchiveError,
    BadRequest,
    Blocked,
    IntegrityError,
    MirrorError,
    NotFound,
    TruncatedBody,
    TrustError,
)
from mirror.index import IndexLine, validate_name, validate_version
from mirror.policy.decision import Decision
from mirror.serving.downloads import CrateFetcher, CrateFile
from mirror.serving.evidence import EvidenceGatherer
from mirror.serving.gate import Gate, Request
from mirror.serving.index_cache import IndexCache, IndexEntry
from mirror.serving.look_ahead import LookAhead
from mirror.serving.publisher import Publisher
from mirror.serving.registry_config import RegistryConfig
from mirror.serving.reload import PolicyReloader
from mirror.serving.views import Judged, RiskView, ServedIndex
from mirror.serving.write_behind import WriteBehind
from mirror.store import Store
from mirror.upstream.client import Upstream

Reusable = Callable[[], bool]
FEED_MAX_LIMIT = MAX_ENTRIES  # entries one near-name feed request may ask for

# Failures that mean "someone may be attacking us": each is an audited block, not just a log.
_AUDITED_FAILURES: tuple[tuple[type[MirrorError], str], ...] = (
    (TrustError, "tuf"),
    (IntegrityError, "checksum"),
    (ArchiveError, "archive"),
)


@dataclass(slots=True)
class Client:
    """Who asks: the id every audit event and error message of the request carries, and who
    it is (a token's name and the address, or the command: prefetch, export)."""

    request_id: str
    who: str | None


@dataclass(slots=True)  # not frozen: frozen init costs a microsecond on every request
class IndexAnswer:
    body: bytes
    etag: str
    summary: Mapping[str, Any]  # versions listed, served, hidden (what the audit says)
    stale: bool  # served from the cache because upstream failed
    reusable: Reusable | None  # None: decide every request again (something is audited)


@dataclass(slots=True)
class CrateAnswer:
    line: IndexLine
    crate: CrateFile
    served_index: ServedIndex  # the crate's index file as this mirror serves it
    reusable: Reusable | None


@dataclass(frozen=True)
class Explanation:
    """The malicious-crate rule's view of a crate (and of one version), for people."""

    crate: str
    view: RiskView
    version: Judged | None  # the version asked about
    held_by: Decision | None  # another rule holding that version back (deny, min_age, ...)
    approve: str | None  # the command that approves it, with this mirror's settings


class MirrorCore:
    """Every part a request needs, built once (mirror.serving.open.open_mirror)."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        upstream: Upstream | None,
        indexes: IndexCache,
        crates: CrateFetcher,
        gate: Gate,
        config: RegistryConfig,
        evidence: EvidenceGatherer,
        *,
        publisher: Publisher | None = None,
        reloader: PolicyReloader | None = None,
        look_ahead: LookAhead | None = None,
        writes: WriteBehind,
        upstream_far: Callable[[], bool] = lambda: False,
    ) -> None:
        self.settings = settings
        self.store = store
        self.upstream = upstream  # None: offline
        self.indexes = indexes
        self.crates = crates
        self.gate = gate
        self.config = config
        self.evidence = evidence  # what the malicious-crate rule weighs, gathered per content
        self.publisher = publisher  # signs what is served (tuf.repository), in the background
        self.reloader = reloader  # re-reads the policy files (SIGHUP, file change)
        self.look_ahead = look_ahead  # fetches what cargo will ask for next
        # Whether upstream answers from far away (mirror.serving.look_ahead.distant).
        self.upstream_far = upstream_far
        # Store writes of what was answered from memory; `flush` before reading the store.
        self.writes = writes

    @property
    def offline(self) -> bool:
        return self.upstream is None

    async def start(self) -> None:
        """Open the store (a shared one connects to its bucket) and the upstream client, and
        learn upstream's `dl` before the first download; ready the scanner if the policy
        scans."""
        await self.store.open()
        if self.upstream is not None:
            await self.upstream.open()
        await self.config.learn_upstream()
        if self.gate.scans_crates:
            # Else the first crate whose verdict waits for a scan waits 0.3 s more, and every
            # request behind it on that connection with it (docs/benchmarks.md).
            await self.evidence.scans.warm_up()

    # -- the two request paths ----------------------------------------------------------------

    async def serve_index(self, name: str, client: Client) -> IndexAnswer:
        req = Request(client.request_id, client.who, "index", validate_name(name))
        gate = self.gate
        gate.check_name(req)  # decide (name)
        entry = await self.indexes.get(name)  # memory, store or upstream (+TUF)
        gate.check_crate(req, await gate.risk_view(entry, self.evidence.view))  # weigh
        if gate.capabilities is not None:
            await gate.capabilities.scan_ahead(entry, self.crates.get)
        offline = self.indexes.offline
        served = gate.served_index(entry, self.store.has_crate if offline else None)  # versions
        if self.look_ahead is not None:
            # Its dependencies' index files and the crate itself come next: fetch meanwhile.
            self.look_ahead.after(entry, served.hidden)
        gate.allowed(req, served.summary)  # record
        stale = entry.stale_reason is not None
        reusable = None
        if not stale and gate.quietly_allowed(name):
            reusable = self._while_current(entry, served, offline=offline)
        return IndexAnswer(served.body, served.etag, served.summary, stale, reusable)

    async def fetch_crate(
        self, name: str, version: str, client: Client, *, route: str = "download"
    ) -> CrateAnswer:
        try:
            return await self._fetch_crate(name, version, client, route)
        except Blocked:
            # The 403 prints the command that approves it, which finds the version in the
            # store (its index file, its crate): a person runs it at once, so what this
            # request fetched must be there by then, not once the writes' turn comes.
            await self.writes.flush()
            raise

    async def _fetch_crate(
        self, name: str, version: str, client: Client, route: str
    ) -> CrateAnswer:
        name, version = validate_name(name), validate_version(version)
        req = Request(client.request_id, client.who, route, name, version)
        gate = self.gate
        gate.check_name(req)  # decide (name)
        entry, line = await self._index_line(name, version)  # memory, store or upstream (+TUF)
        view = await gate.risk_view(entry, self.evidence.view)  # weigh the evidence
        gate.check_crate(req, view)
        served = gate.check_version(req, entry, line)  # decide (version)
        try:
            crate = await self.crates.get(line)  # memory, store or upstream (checksum)
        except IntegrityError as e:
            entry, line = await self._recheck_after_mismatch(entry, line, e)
            view = await gate.risk_view(entry, self.evidence.view)  # weigh the new file
            gate.check_crate(req, view)
            served = gate.check_version(req, entry, line)  # decide (version) on the new line
            crate = await self.crates.get(line)
        if view is not None and gate.engine is not None:  # scan, decide (malicious version)
            engine = gate.engine
            await gate.check_risk_download(
                req,
                entry,
                line,
                lambda: self.evidence.judge_download(
                    entry, view, line, crate, engine, gate.reviewer
                ),
            )
        quiet = await gate.check_capabilities(req, line, crate)  # scan, decide (capabilities)
        gate.allowed(req, {"cksum": line.cksum})  # record
        if self.look_ahead is not None:
            self.look_ahead.downloaded(line.cksum)  # a guess that was right (the metrics)
        reusable = None
        if quiet and gate.quietly_allowed(name) and version not in served.hidden:
            # A first sighting recorded just now changed the generation: judge the new view.
            reusable = self._while_current(entry, gate.served_index(entry), offline=False)
        return CrateAnswer(line, crate, served, reusable)

    # -- when a download contradicts the index file (issue 16) ----------------------------------

    async def _index_line(self, name: str, version: str) -> tuple[IndexEntry, IndexLine]:
        """The index line cargo asks for; a version our copy lacks is asked of upstream once
        more (the copy may have arrived corrupted) before it is a 404."""
        entry = await self.indexes.get(name)
        line = entry.index.find(version)
        if line is None:
            entry = await self.indexes.recheck(name, entry, f"{version} is not listed")
            line = entry.index.find(version)
        if line is None:
            raise NotFound(f"{name}@{version} is not in the upstream index")
        return entry, line

    async def _recheck_after_mismatch(
        self, entry: IndexEntry, line: IndexLine, error: IntegrityError
    ) -> tuple[IndexEntry, IndexLine]:
        """The crate did not match the cksum of our copy's line: the crate or the copy is
        wrong. If upstream's index file now says another cksum, the copy was; else `error`."""
        if isinstance(error, TruncatedBody):
            raise error  # a cut-short body says nothing about the index
        fresh = await self.indexes.recheck(entry.name, entry, "checksum mismatch")
        new_line = fresh.index.find(line.vers)
        if new_line is None or new_line.cksum == line.cksum:
            raise error
        return fresh, new_line

    # -- around them --------------------------------------------------------------------------

    def record_failure(
        self, client: Client, route: str, crate: str, version: str | None, error: MirrorError
    ) -> None:
        """Verification failures (TUF, checksum, hostile archive) are audited as blocks."""
        for kind, rule in _AUDITED_FAILURES:
            if isinstance(error, kind):
                req = Request(client.request_id, client.who, route, crate, version)
                self.gate.failed(req, rule, str(error))

    async def explain(self, name: str, version: str | None = None) -> Explanation:
        """The evidence the risk rule weighs for `name` (and `version`), judged as serving
        would, without recording anything: `crate-mirror explain`."""
        name = validate_name(name)
        engine = self.gate.engine
        if engine is None or not engine.judges_risk:
            raise BadRequest("the policy has no `rules.risk` turned on: nothing to explain")
        entry = await self.indexes.get(name)
        view = await self.evidence.view(entry, engine, self.gate.reviewer)
        assert view is not None
        judged, held_by, approve_version = None, None, view.newest.vers if view.newest else None
        if version is not None:
            line = entry.index.find(validate_version(version))
            if line is None:
                raise NotFound(f"{name}@{version} is not in the upstream index")
            judged = view.versions.get(version)
            if judged is None or view.facts[version].content is None:
                facts = await self.evidence.version_facts(
                    entry, line, engine, scan=True, first_seen=entry.first_seen
                )
                now = datetime.now(UTC)
                result = engine.decide_risk_version(
                    view.name,
                    view.history,
                    facts,
                    now,
                    reviewed_by=self.gate.reviewer(name, version),
                )
                assert result is not None
                judged = Judged(*result)
            held_by = self.gate.served_index(entry).hidden.get(version)
            approve_version = version
        approve = None
        if approve_version is not None and self.gate.capabilities is not None:
            approve = self.gate.capabilities.approve_command(name, approve_version)
        return Explanation(name, view, judged, held_by, approve)

    async def settle(self) -> None:
        """Wait for what was answered before it was written: first sightings' records
        (mirror/serving/capability_guard.py), then the store writes (write_behind.py).
        Batch commands call it before they finish; the console before it reads the store."""
        if self.gate.capabilities is not None:
            await self.gate.capabilities.settle()
        await self.writes.flush()

    def health(self) -> Mapping[str, Any]:
        return {"status": "ok", "offline": self.offline}

    async def near_names(self, limit: int, fmt: str, self_url: str) -> tuple[bytes, str]:
        """The near-name feed's newest `limit` entries as a document: `json` or `atom`.
        Returns (body, content type)."""
        directory = self.settings.audit_directory
        entries = await asyncio.to_thread(newest_entries, directory, min(limit, FEED_MAX_LIMIT))
        base = self.settings.base_url
        title = f"crate-mirror near names at {base}"
        if fmt == "atom":
            body = render_atom(entries, title=title, self_url=self_url, feed_id=f"{base}/feed")
            return body, "application/atom+xml"
        return render_json(entries, title=title), "application/json"

    def _while_current(self, entry: IndexEntry, served: ServedIndex, *, offline: bool) -> Reusable:
        gate, is_fresh = self.gate, self.indexes.is_fresh

        def still_valid() -> bool:
            return is_fresh(entry) and gate.still_serves(entry, served, offline=offline)

        return still_valid
