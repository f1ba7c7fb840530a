"""Capability scan reports, once per crate content: memory, then the store, else a scan.

A crate is immutable (named by its sha256), so its scan never changes: the report is kept in
the store as JSON by sha256 (`Store.read_scan`/`write_scan`) and in memory for the hot ones.
Concurrent requests for the same new crate share one scan. A request that waits for it scans
in a worker thread (CPU work must not stall the event loop). A scan nobody waits for (a
crate trusted on first use, recorded after it was answered) runs in a separate process at
low priority (mirror.serving.background_scanner): in a thread it would hold the GIL the event
loop needs, and it must not take the CPU from the requests and builds that are waiting.
Anything that wants content evidence about a crate (the capability guard today) asks here.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterable, Iterator

import structlog

from mirror.errors import ArchiveError
from mirror.scan.capabilities import check_archive, report_json, scan_crate, warm_up
from mirror.scan.report import CapabilityReport
from mirror.serving.background_scanner import BackgroundScanner
from mirror.serving.singleflight import SingleFlight
from mirror.store import Store

log = structlog.get_logger("mirror.scans")
MAX_REPORTS_IN_MEMORY = 20_000  # reports kept in memory; the rest are read from the store
MAX_MADE_REMEMBERED = 20_000  # scans whose count `made_since` can tell; older ones count as new
# Judging an index file asks for the report of each of its versions, twice (the risk rule,
# the capability verdicts), and on a cold cache most have none: 9 µs of disk per miss, 5 ms
# for a crate of 300 versions. A miss is remembered this long (seconds) ...
ABSENT_FOR = 2.0
MAX_ABSENT = 10_000  # ... for this many crates at most (about 1 MB)
CHECK_ON_LOOP_BYTES = 128 * 1024  # archives checked on the event loop: about 2 ms at most


class Scans:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._reports: dict[str, CapabilityReport] = {}
        self._in_flight: SingleFlight[CapabilityReport] = SingleFlight()
        # Counts reports this process made, or fetched from a store it shares with peers. A
        # view derived from an index file is recomputed when one of its versions got a report
        # after it (`made_since`), not on every scan: during a cold build that recomputed
        # most of them for nothing.
        self.generation = 0
        self._made: dict[str, int] = {}  # sha256 -> `generation` right after its report
        self._made_floor = 0  # scans up to this count were forgotten
        self._absent: dict[str, float] = {}  # sha256 -> until when it counts as unscanned
        self._background = BackgroundScanner()
        self._background_running: set[str] = set()  # sha256s the background is scanning

    def known(self, sha256: str) -> CapabilityReport | None:
        """The report of an already scanned crate, without scanning. A crate just found
        unscanned is not looked for on disk again for `ABSENT_FOR` (a report a peer
        process writes meanwhile is seen that much later; one made here, at once)."""
        report = self._reports.get(sha256)
        if report is None:
            now = time.monotonic()
            if self._absent.get(sha256, 0.0) > now:
                return None
            report = decode(self._store.read_scan(sha256), sha256)
            if report is None:
                if len(self._absent) >= MAX_ABSENT:
                    self._absent.clear()
                self._absent[sha256] = now + ABSENT_FOR
            else:
                self._remember(report)
        return report

    def made_since(self, mark: int, sha256s: Iterable[str]) -> bool:
        """Whether a report of any of these crates was made after `generation` was `mark`."""
        if mark == self.generation:
            return False
        if mark < self._made_floor:
            return True  # it may have been one of those forgotten
        made = self._made
        return any(made.get(sha256, 0) > mark for sha256 in sha256s)

    async def report(
        self, sha256: str, read: Callable[[], bytes], *, background: bool = False
    ) -> CapabilityReport:
        """The report of the crate with this sha256; `read` gives its bytes if it needs a scan.
        `background`: nobody waits for it (scanned at low priority in another process).
        Raises ArchiveError for a hostile or malformed crate (never stored: asked again)."""
        known = self.known(sha256)
        if known is not None:
            return known
        if not background:
            if sha256 in self._background_running:
                # Someone waits now: the low-priority process may take seconds more to get
                # to it, so scan here too (the same report, written twice at most).
                return await asyncio.to_thread(lambda: self.scan_bytes(read()))
            return await self._in_flight.run(
                sha256, lambda: self._shared_or_scan(sha256, read, False)
            )
        # One background scan at a time, in order; until its turn comes, a request that
        # cannot wait scans the crate itself (and this one then finds its report).
        async with self._background.turn:
            known = self.known(sha256)
            if known is not None:
                return known
            return await self._in_flight.run(
                sha256, lambda: self._shared_or_scan(sha256, read, True)
            )

    async def warm_up(self) -> None:
        """Ready the scanner in this process (mirror.scan.capabilities.warm_up)."""
        await asyncio.to_thread(warm_up)

    async def check_archive(
        self, sha256: str, read: Callable[[], bytes], *, body: bytes | None = None
    ) -> None:
        """Raise ArchiveError for a crate its scan would refuse as an archive, without the
        scan (a crate already scanned passed this long ago). `body`: its bytes, if in memory."""
        if self.known(sha256) is not None:
            return
        if body is not None and len(body) <= CHECK_ON_LOOP_BYTES:
            # In a thread, the check's Python would hold the GIL the event loop needs just
            # the same, and the trip there and back costs more than the check itself.
            check_archive(body)
            return
        await asyncio.to_thread(lambda: check_archive(read()))

    async def _shared_or_scan(
        self, sha256: str, read: Callable[[], bytes], background: bool
    ) -> CapabilityReport:
        """A replica that shares a store asks it first: a peer may have scanned this crate."""
        report = decode(await self._store.load_scan(sha256), sha256)
        if report is not None:
            self._remember(report)
            self._made_now(report.sha256)  # new to the views of this process all the same
            return report
        if background:
            data = await asyncio.to_thread(read)
            self._background_running.add(sha256)
            try:
                body = await self._background.scan(data)
            finally:
                self._background_running.discard(sha256)
            report = decode(body, sha256)
            if report is None:
                raise ArchiveError(f"the background scan of {sha256} gave an unreadable report")
            return await asyncio.to_thread(self._keep, report, body)
        return await asyncio.to_thread(lambda: self.scan_bytes(read()))

    def scan_bytes(self, data: bytes) -> CapabilityReport:
        """Scan a crate's bytes and store the report (StorageError if the store refuses)."""
        report = scan_crate(data)
        return self._keep(report, report_json(report))

    def _keep(self, report: CapabilityReport, body: bytes) -> CapabilityReport:
        self._store.write_scan(report.sha256, body)
        self._remember(report)
        self._made_now(report.sha256)
        return report

    def _made_now(self, sha256: str) -> None:
        self.generation += 1
        made = self._made
        made.pop(sha256, None)  # in the order they were made: the oldest go first
        made[sha256] = self.generation
        if len(made) > MAX_MADE_REMEMBERED:
            for old in list(made)[: len(made) // 2]:
                self._made_floor = max(self._made_floor, made.pop(old))

    def close(self) -> None:
        self._background.stop()

    def stored(self) -> Iterator[CapabilityReport]:
        """Every readable stored report (order unspecified)."""
        for sha256 in self._store.iter_scans():
            report = self.known(sha256)
            if report is not None:
                yield report

    def _remember(self, report: CapabilityReport) -> None:
        self._absent.pop(report.sha256, None)
        if len(self._reports) >= MAX_REPORTS_IN_MEMORY:
            self._reports.clear()  # the store still has them all
        self._reports[report.sha256] = report


def decode(body: bytes | None, sha256: str) -> CapabilityReport | None:
    """A stored report, or None when absent, damaged, from an older scanner (another
    format), or about another crate than its name says: then the crate is scanned again."""
    if body is None:
        return None
    try:
        report = CapabilityReport.from_json(json.loads(body))
    except ValueError:
        return None
    return report if report.sha256 == sha256 else None
